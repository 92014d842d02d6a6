"""faces.py end to end at a tiny size, as a user runs it: every artifact appears, variants train in
two worker processes, a rerun resumes without training again, the CSVs it writes read as OpenFace's,
and a user's own BP4D-layout folder (here the rendered one) replaces the rendered fine-tuning set."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.openface.reader import read_raw

REPO = Path(__file__).resolve().parents[1]
TINY = ["render.size=64", "render.supersample=1", "pretrain_set.identities=8", "pretrain_set.per_identity=3",
        "finetune_set.subjects=4", "finetune_set.frames=9", "finetune_set.stride=3",
        "au_cnn.width=0.0625", "au_cnn.fc=16", "pretrain.max_epochs=1", "finetune.max_epochs=1",
        "scaling.images=[10]", "scaling.identities=[]", "folds=2", "workers=2", "progress=false", "examples=4",
        "device=cpu"]


def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "faces.py", f"out={out}", *TINY, *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_faces_script_runs_resumes_and_writes_ingestible_csvs(tmp_path):
    out = tmp_path / "faces"
    first = run(out)
    assert first.returncode == 0, first.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"full", "scratch", "images_10"}
    for name in ("full", "images_10"):
        assert (out / "pretrain" / name / "best.pt").exists()
    for name in ("full", "scratch", "images_10"):
        assert [p.name for p in sorted((out / "finetune" / name).glob("fold*.pt"))] == ["fold0.pt", "fold1.pt"]
        assert (out / "tb" / name).is_dir()                     # each variant logs from its own process
    assert "noisy pretraining + fine-tuning" in (out / "results.md").read_text()

    csvs = sorted((out / "openface").glob("*.csv"))
    assert len(csvs) == 4
    raw = read_raw(csvs[0])
    assert raw.aus.shape == (9, 17) and np.isfinite(raw.aus).all()

    stamp = {p: p.stat().st_mtime_ns for p in (out / "finetune").rglob("fold*.pt")}
    again = run(out)                                           # resumes: nothing is trained again
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in (out / "finetune").rglob("fold*.pt")} == stamp
    assert json.loads((out / "results.json").read_text())["results"].keys() == results["results"].keys()

    own = run(tmp_path / "own", f"finetune_set.layout={out / 'data' / 'finetune' / 'bp4d'}")
    assert own.returncode == 0, own.stderr[-2000:]
    table = (tmp_path / "own" / "results.md").read_text()
    assert "simulated OpenFace (annotator)" not in table           # no driving truth for a user's data
    assert not (tmp_path / "own" / "data" / "finetune").exists()    # nothing rendered for fine-tuning
    assert len(list((tmp_path / "own" / "openface").glob("*.csv"))) == 4
