"""summarise and the results tables: from known per-split metrics, results.md and results.csv hold
exactly the cells expected, worked out by hand (markdown) or with Python's `statistics` (CSV)."""
import csv
import statistics

import pytest

from training.experiment import summarise
from training.results import write_results

OTHER = {"pcc": -0.1, "rmse": 4.0, "ccc": -0.1, "constant": False}  # the restart not selected, every split


def _m(pcc, rmse, ccc, constant=False):
    return {"pcc": pcc, "rmse": rmse, "ccc": ccc, "constant": constant}


# k-fold, 3 splits, 2 targets; per split the selected restart's test metrics; delusions is constant in split 0
KFOLD = {"hallucinations": [_m(0.1, 1.0, 0.2), _m(0.3, 2.0, 0.2), _m(0.5, 3.0, 0.5)],
         "delusions": [_m(0.0, 2.0, 0.0, True), _m(0.4, 2.0, 0.1), _m(0.2, 2.0, 0.2)]}


def _results(per_target: dict) -> list[dict]:
    """What fit_*_split returns per split: selected restart 0 of two, its test metrics, both restarts'."""
    n_splits = len(next(iter(per_target.values())))
    return [{"targets": {t: {"selected": 0, "val_selected": _m(0.9, 0.5, 0.9), "test_selected": sel[k],
                             "test": [sel[k], OTHER]} for t, sel in enumerate(per_target.values())}}
            for k in range(n_splits)]


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_summarise_by_hand():
    s = summarise(_results(KFOLD), list(KFOLD))
    h, d = s["hallucinations"], s["delusions"]
    assert h["pcc"] == pytest.approx(0.3) and h["pcc_std"] == pytest.approx(0.2)          # 0.1, 0.3, 0.5
    assert h["rmse"] == pytest.approx(2.0) and h["rmse_std"] == pytest.approx(1.0)        # 1, 2, 3
    assert h["ccc"] == pytest.approx(0.3) and h["ccc_std"] == pytest.approx(0.03 ** 0.5)  # 0.2, 0.2, 0.5
    assert h["n_splits"] == 3 and h["constant_splits"] == 0 and d["constant_splits"] == 1
    # spread over both restarts of every split: 0.1, -0.1, 0.3, -0.1, 0.5, -0.1
    assert h["restarts"]["n"] == 2 and h["restarts"]["pcc_mean"] == pytest.approx(0.1)
    assert h["restarts"]["pcc_std"] == pytest.approx((0.32 / 5) ** 0.5)
    assert [r["test"]["pcc"] for r in h["splits"]] == [0.1, 0.3, 0.5] and h["splits"][2]["split"] == 2
    # one split: no spread over splits, reported as 0
    one = summarise(_results({"phq8": [_m(0.456, 7.979, 0.312)]}), ["phq8"])["phq8"]
    assert one["ccc"] == 0.312 and one["ccc_std"] == 0.0 and one["n_splits"] == 1


def test_kfold_tables_hold_the_expected_cells(tmp_path):
    metrics = {"targets": summarise(_results(KFOLD), list(KFOLD))}
    md = write_results(tmp_path, "task_a", "kfold", [("random", "Random", metrics), ("lstm_au", "LSTM + AU", None)])
    assert (tmp_path / "results.md").read_text() == md
    assert md == (
        "### task_a: Table I layout: PCC / RMSE on the test folds, mean ± std over folds\n"
        "\n"
        "| model | Hallucinations PCC | Hallucinations RMSE | Delusions PCC | Delusions RMSE |\n"
        "|---|---|---|---|---|\n"
        "| Random | 0.300 ± 0.200 | 2.000 ± 1.000 | 0.200 ± 0.200† | 2.000 ± 0.000 |\n"
        "| LSTM + AU | (not run) | (not run) | (not run) | (not run) |\n"
        "\n"
        "† some split's selected model predicted a constant: its correlation is reported as 0.\n")
    rows = _read_csv(tmp_path / "results.csv")
    assert [(r["run"], r["model"]) for r in rows] == [("random", "Random"), ("lstm_au", "LSTM + AU")]
    assert set(rows[1].values()) == {"lstm_au", "LSTM + AU", ""}             # not run: empty cells
    for t, sel in KFOLD.items():
        every = [m for s in sel for m in (s, OTHER)]
        want = {"constant_splits": str(sum(s["constant"] for s in sel)), "restarts_n": "2"}
        for m in ("pcc", "rmse", "ccc"):
            want[m] = f"{statistics.mean(s[m] for s in sel):.6g}"
            want[f"{m}_std"] = f"{statistics.stdev(s[m] for s in sel):.6g}"
            want[f"restarts_{m}_mean"] = f"{statistics.mean(x[m] for x in every):.6g}"
            want[f"restarts_{m}_std"] = f"{statistics.stdev(x[m] for x in every):.6g}"
        got = {k[len(t) + 1:]: v for k, v in rows[0].items() if k.startswith(t + "_")}
        assert got == want, t
    assert len(rows[0]) == 2 + 2 * 14                                        # run, model + 14 columns a target


def test_split_tables_hold_the_expected_cells(tmp_path):
    """Task B layout: the selected restart's test CCC / PCC / RMSE, then mean ± std over all restarts."""
    sel = _m(0.456, 7.979, 0.312)
    results = [{"targets": {0: {"selected": 0, "val_selected": sel, "test_selected": sel,
                                "test": [sel, _m(0.2, 9.0, 0.1), _m(0.3, 8.0, 0.2)]}}}]
    metrics = {"targets": summarise(results, ["phq8"])}
    md = write_results(tmp_path, "task_b", "split", [("glove_d25", "LSTM + GloVe d=25", metrics)])
    # restarts: CCC 0.312, 0.1, 0.2 -> 0.204 ± 0.106; PCC 0.456, 0.2, 0.3 -> 0.319 ± 0.129;
    # RMSE 7.979, 9, 8 -> 8.326 ± 0.584 (sample standard deviations)
    assert md.splitlines()[2:] == [
        "| model | CCC | PCC | RMSE | CCC (restarts) | PCC (restarts) | RMSE (restarts) | n |",
        "|---|---|---|---|---|---|---|---|",
        "| LSTM + GloVe d=25 | 0.312 | 0.456 | 7.979 | 0.204 ± 0.106 | 0.319 ± 0.129 | 8.326 ± 0.584 | 3 |"]
    assert md.startswith("### task_b: Table II layout: the test set;") and "†" not in md
    row = _read_csv(tmp_path / "results.csv")[0]
    assert row["phq8_ccc"] == "0.312" and row["phq8_pcc"] == "0.456" and row["phq8_rmse"] == "7.979"
    assert row["phq8_ccc_std"] == "0" and row["phq8_restarts_n"] == "3" and row["phq8_constant_splits"] == "0"
    assert row["phq8_restarts_ccc_mean"] == "0.204" and row["phq8_restarts_ccc_std"] == "0.106057"
    assert row["phq8_restarts_rmse_mean"] == "8.32633" and row["phq8_restarts_rmse_std"] == "0.583507"
