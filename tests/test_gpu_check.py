"""The prepared GPU check runs in its CPU mode, so it cannot rot before a GPU runs it: every part
finishes, and the JSON and the Markdown table hold each part's figures."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_tiny_mode(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), str(tmp_path), "--cpu-tiny"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = report["parts"]
    assert list(parts) == ["pytest_gpu", "kmeans", "cooccurrence", "glove", "distributed", "lstm", "task_b",
                          "faces", "kmeans_sweep"]
    assert all(p["status"] == "ok" for p in parts.values()), {n: p["status"] for n, p in parts.items()}
    # a difference of two timings (bench_kmeans.per_iteration): at tiny sizes on a busy box, noise can
    # make it negative, so only that it was measured is checked here
    assert math.isfinite(parts["kmeans"]["result"]["torch"]["ms_per_iteration"])
    assert parts["kmeans_sweep"]["result"]["complete"] and len(parts["kmeans_sweep"]["result"]["rows"]) == 3
    assert parts["cooccurrence"]["result"]["nonzeros"] > 0 and parts["glove"]["result"]["finite"]
    assert parts["task_b"]["result"]["complete"] and parts["task_b"]["result"]["epochs_logged"] >= 1
    assert parts["distributed"]["result"]["cpu_1_process_ms"] > 0
    assert parts["faces"]["result"]["bench_rc"] == 0 and "GTLE-Net" in parts["faces"]["result"]["bench_table"]
    assert {r["method"] for r in parts["lstm"]["result"]["rows"]} == {"one at a time", "grouped", "fused", "blockdiag"}
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.count("\n| ") == 1 + len(parts) and "| kmeans_sweep | ok |" in table
