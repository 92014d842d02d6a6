"""Tiny runs of every stage for the fault-injection and bad-input tests: the stage runners, a forked
child to run one in (torch is imported already, so a child costs no start-up; `kill -9` of it is
real), the reference chain (one uninterrupted run of each stage) and the comparisons of artifacts."""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import pytest
import torch

import cluster
import embed
import ingest
import train
from tests.openface_files import openface_table
from tests.tiny_tasks import make_task, task_overrides


def _redirect(log: Path) -> None:
    """The child's output, fd and Python level (pytest's capture replaced sys.stderr), to `log`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = os.fdopen(fd, "w", buffering=1)


def in_child(fn, *, fault: str | None = None, log: Path | None = None) -> int:
    """Run fn() in a forked child; its exit status (negative: killed by that signal)."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 0
        try:
            torch.set_num_threads(1)
            if fault:
                os.environ["FACEVOCAB_FAULT"] = fault
            if log is not None:
                _redirect(log)
            fn()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0
        except BaseException:
            traceback.print_exc()
            code = 99
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# --- the stages on tiny inputs ---------------------------------------------------------------------

def write_csvs(src: Path, n_files: int = 6, rows: int = 120) -> Path:
    for i in range(n_files):
        openface_table(rows, seed=i).write(src / f"s{i // 2}" / f"v{i}.csv")
    return src


def run_ingest(src: Path, out: Path) -> None:
    ingest.main([f"src={src}", f"out={out}", "workers=1", "progress=false"])


CLUSTER = ["sweep=[2,4]", "k=3", "min_count=1", "device=cpu", "init_sample=1000"]


def run_cluster(corpus: Path, out: Path) -> None:
    cluster.main([f"corpus={corpus}", f"out={out}", *CLUSTER])


EMBED = ["dims=[4,6]", "device=cpu", "glove.epochs=30", "glove.checkpoint_every=10", "glove.log_every=10"]


def run_embed(tokens: Path, out: Path) -> None:
    embed.main([f"tokens={tokens}", f"out={out}", *EMBED])


TRAIN = ["task=task_a", "model=bilstm_tokens", "task_a.folds=3", "train.max_epochs=1", "train.patience=1",
         "bilstm_tokens.embed_dim=4", "bilstm_tokens.hidden=4", "bilstm_tokens.head=4", "progress=false",
         "device=cpu"]


def run_train(paths: dict, out: Path) -> None:
    assert train.main([*task_overrides("task_a", paths), *TRAIN, f"out={out}"]) == 0


@pytest.fixture(scope="session")
def chain(tmp_path_factory):
    """One uninterrupted run of every stage: the reference."""
    root = tmp_path_factory.mktemp("chain")
    src = write_csvs(root / "src")
    run_ingest(src, root / "corpus")
    run_cluster(root / "corpus", root / "vocab")
    run_embed(root / "vocab", root / "embed")
    task = make_task(root / "task", kind="task_a", subjects=6, videos_per_subject=2, frames=(8, 16), k=6)
    run_train(task, root / "train")
    return {"root": root, "src": src, "task": task}


def tensors_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a.to_dense(), b.to_dense())
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b))
    return a == b


def without(obj: dict, *keys: str) -> dict:
    return {k: v for k, v in obj.items() if k not in keys}


def same_corpus(a: Path, b: Path) -> None:
    for name in ("frames", "timestamps", "gap_before", "offsets", "sequence_video"):
        assert (a / f"{name}.npy").read_bytes() == (b / f"{name}.npy").read_bytes(), name
    assert (a / "videos.txt").read_text() == (b / "videos.txt").read_text()
    meta = [without(json.loads((d / "meta.json").read_text()), "stamp", "src") for d in (a, b)]
    assert meta[0] == meta[1]
    assert json.loads((a / "ingest_report.json").read_text()) == json.loads((b / "ingest_report.json").read_text())


def same_vocab(a: Path, b: Path) -> None:
    for name in ("centroids.pt", "tokens.pt"):
        assert tensors_equal(torch.load(a / name, weights_only=True), torch.load(b / name, weights_only=True)), name
    assert (a / "vocab.tsv").read_text() == (b / "vocab.tsv").read_text()
    assert json.loads((a / "summary.json").read_text()) == json.loads((b / "summary.json").read_text())
    elbow = [[row.split(",")[:4] for row in (d / "elbow.csv").read_text().splitlines()] for d in (a, b)]
    assert elbow[0] == elbow[1]                        # k, mean_dist, inertia, iterations (not seconds)


def same_embed(a: Path, b: Path) -> None:
    for d in (4, 6):
        ea, eb = (torch.load(x / f"embeddings_d{d}.pt", weights_only=True) for x in (a, b))
        assert tensors_equal(without(ea, "seconds"), without(eb, "seconds")), d
        assert (a / f"vectors_d{d}.txt").read_text() == (b / f"vectors_d{d}.txt").read_text()
    assert (a / "cooccurrence.bin").read_bytes() == (b / "cooccurrence.bin").read_bytes()
    assert not (b / "checkpoints").exists()


def same_train(a: Path, b: Path) -> None:
    ma, mb = (json.loads((x / "metrics.json").read_text()) for x in (a, b))
    assert without(ma, "seconds") == without(mb, "seconds")
    assert tensors_equal(torch.load(a / "best.pt", weights_only=True)["states"],
                         torch.load(b / "best.pt", weights_only=True)["states"])
