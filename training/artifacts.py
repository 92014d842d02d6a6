"""The files train.py writes and reads back, each read by one checked reader.

    splits/split{k}.pt   a finished split (a cache: a damaged one is said in one line and trained again)
    inputs.json          {input name: hash of its file}: what the run was computed from
    metrics.json         written last: the run is finished when it exists
"""
from __future__ import annotations

import sys
from pathlib import Path

from utils.artifacts import ArtifactError, check_fields, load_json, load_torch, require

SPLIT_FIELDS = {"targets": dict, "states": dict, "split": int, "test_items": object, "seconds": float, "device": str}
METRICS_FIELDS = {"task": str, "model": str, "targets": dict, "mean_over_targets": dict}


def read_split(path: str | Path, k: int) -> dict | None:
    """A finished split `k`, or None when there is none or it is damaged (then it is trained again)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        done = check_fields(load_torch(path, "split result"), path, "split result", SPLIT_FIELDS)
        require(done["split"] == k, path, "split result", f"holds split {done['split']}, not split {k}")
        return done
    except ArtifactError as err:
        print(f"{err}; training split {k} again", file=sys.stderr)
        path.unlink()
        return None


def read_inputs(path: str | Path) -> dict[str, str]:
    stamp = load_json(path, "inputs stamp")
    require(isinstance(stamp, dict) and all(isinstance(v, str) for v in stamp.values()), path, "inputs stamp",
            "expected {input name: hash}")
    return stamp


def read_metrics(path: str | Path) -> dict:
    return check_fields(load_json(path, "metrics"), path, "metrics", METRICS_FIELDS)
