"""Results tables in the layout of the paper: Table I (k-fold: PCC / RMSE per item, mean ± std over
folds) and Table II (fixed split: CCC / PCC / RMSE of the selected restart on the test set, with
the spread of the test metrics over all restarts). A `†` marks a cell where some split's selected
model predicted a constant (its correlations were reported as 0, see losses/metrics.py).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from utils.io import save_text

SHORT = {"conceptual_disorganisation": "Concept. disorg.", "flow_of_conversation": "Flow of conv.",
         "hallucinations": "Hallucinations", "suspiciousness": "Susp./persecution", "delusions": "Delusions",
         "phq8": "PHQ-8"}
TITLES = {"kfold": "Table I layout: PCC / RMSE on the test folds, mean ± std over folds",
          "split": "Table II layout: the test set; CCC / PCC / RMSE of the restart selected on validation, "
                   "and mean ± std of the test metrics over all restarts"}


def _pm(mean: float, std: float, flag: bool = False) -> str:
    return f"{mean:.3f} ± {std:.3f}" + ("†" if flag else "")


def markdown_table(task: str, protocol: str, rows: list[tuple[str, dict | None]]) -> str:
    """rows: (label, metrics.json content or None when the run has not finished)."""
    targets = next((list(m["targets"]) for _, m in rows if m), [])
    if protocol == "kfold":
        header = ["model"] + [f"{SHORT.get(t, t)} {m}" for t in targets for m in ("PCC", "RMSE")]
    else:
        header = ["model"] + [f"{SHORT.get(t, t) + ' ' if len(targets) > 1 else ''}{m}" for t in targets
                              for m in ("CCC", "PCC", "RMSE", "CCC (restarts)", "PCC (restarts)", "RMSE (restarts)", "n")]
    lines = [f"### {task}: {TITLES[protocol]}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for label, m in rows:
        cells = [label]
        for t in targets:
            if m is None or t not in m["targets"]:
                cells += ["(not run)"] * (2 if protocol == "kfold" else 7)
                continue
            s = m["targets"][t]
            flag = s["constant_splits"] > 0
            if protocol == "kfold":
                cells += [_pm(s["pcc"], s["pcc_std"], flag), _pm(s["rmse"], s["rmse_std"])]
            else:
                r = s["restarts"]
                cells += [f"{s['ccc']:.3f}" + ("†" if flag else ""), f"{s['pcc']:.3f}" + ("†" if flag else ""),
                          f"{s['rmse']:.3f}", _pm(r["ccc_mean"], r["ccc_std"]), _pm(r["pcc_mean"], r["pcc_std"]),
                          _pm(r["rmse_mean"], r["rmse_std"]), str(r["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    if any(m and any(s["constant_splits"] for s in m["targets"].values()) for _, m in rows):
        lines += ["", "† some split's selected model predicted a constant: its correlation is reported as 0."]
    return "\n".join(lines) + "\n"


def csv_table(protocol: str, rows: list[tuple[str, str, dict | None]]) -> str:
    """rows: (run id, label, metrics or None); one row per model, wide columns as the markdown table."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    targets = next((list(m["targets"]) for _, _, m in rows if m), [])
    stats = ["pcc", "pcc_std", "rmse", "rmse_std", "ccc", "ccc_std"]
    spread = ["ccc_mean", "ccc_std", "pcc_mean", "pcc_std", "rmse_mean", "rmse_std", "n"]
    header = ["run", "model"]
    for t in targets:
        header += [f"{t}_{s}" for s in stats] + [f"{t}_restarts_{s}" for s in spread] + [f"{t}_constant_splits"]
    writer.writerow(header)
    for run_id, label, m in rows:
        row = [run_id, label]
        for t in targets:
            s = (m or {}).get("targets", {}).get(t)
            row += ([f"{s[k]:.6g}" for k in stats] + [f"{s['restarts'][k]:.6g}" for k in spread]
                    + [s["constant_splits"]]) if s else [""] * (len(stats) + len(spread) + 1)
        writer.writerow(row)
    return buf.getvalue()


def write_results(out: str | Path, task: str, protocol: str, rows: list[tuple[str, str, dict | None]]) -> str:
    """Write `out/results.md` and `out/results.csv` for one task; returns the markdown."""
    out = Path(out)
    md = markdown_table(task, protocol, [(label, m) for _, label, m in rows])
    save_text(md, out / "results.md")
    save_text(csv_table(protocol, rows), out / "results.csv")
    return md
