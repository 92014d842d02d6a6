"""Fault injection on tiny data: every stage killed (-9) at chosen writes then rerun gives the artifacts
of an uninterrupted run; Ctrl-C / SIGTERM end in one line and exit 130; run directories have one writer;
pool workers die with their parent.

A stage runs in a forked child of this test process (torch is imported already, so a child costs
no start-up), with FACEVOCAB_FAULT (utils/faults.py) choosing the write at which it is killed; the
rerun happens in this process. `kill -9` is real: the child dies by SIGKILL with its temp file left.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

import cluster
import embed
import ingest
import train
from tests.openface_files import openface_table
from tests.tiny_tasks import make_task, task_overrides
from utils.cli import INTERRUPTED, run_script
from utils.runs import RunDirError, lock_dir, open_run_dir

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


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


@pytest.fixture(scope="module")
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
    meta = [without(json.loads((d / "meta.json").read_text()), "stamp") for d in (a, b)]
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


# --- kill -9 at chosen writes, then rerun: identical artifacts ------------------------------------

KILLS = [
    ("ingest", "*.part:kill:3"), ("ingest", "frames.npy:kill"), ("ingest", "meta.json:kill"),
    ("ingest", "*.part:fail:2"),
    ("cluster", "k2.pt:kill"), ("cluster", "k4.pt:kill"), ("cluster", "centroids.pt:kill"),
    ("cluster", "tokens.pt:kill"), ("cluster", "vocab.tsv:fail"),
    ("embed", "cooccurrence.pt:kill"), ("embed", "glove_d4.pt:kill:2"), ("embed", "embeddings_d4.pt:kill"),
    ("embed", "glove_d6.pt:kill"), ("embed", "summary.json:fail"),
    ("train", "split1.pt:kill"), ("train", "best.pt:kill"), ("train", "metrics.json:kill"),
]


@pytest.mark.parametrize("stage,fault", KILLS, ids=[f"{s}-{f}" for s, f in KILLS])
def test_killed_stage_resumes_identically(chain, tmp_path, stage, fault):
    root = chain["root"]
    out = tmp_path / stage
    run, reference, same = {
        "ingest": (lambda: run_ingest(chain["src"], out), root / "corpus", same_corpus),
        "cluster": (lambda: run_cluster(root / "corpus", out), root / "vocab", same_vocab),
        "embed": (lambda: run_embed(root / "vocab", out), root / "embed", same_embed),
        "train": (lambda: run_train(chain["task"], out), root / "train", same_train),
    }[stage]
    status = in_child(lambda: run_script(lambda argv: run(), stage), fault=fault, log=tmp_path / "child.log")
    action = fault.split(":")[1]
    expected = -signal.SIGKILL if action == "kill" else 2       # fail: a full disk, one line, exit 2
    assert status == expected, (tmp_path / "child.log").read_text()
    if action == "fail":
        log = (tmp_path / "child.log").read_text()
        assert "Traceback" not in log and "No space left on device" in log.strip().splitlines()[-1]
    run()                                                       # the same command again
    same(reference, out)
    assert not list(out.rglob(".*.tmp*")), "a temp file of the killed writer was left behind"


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------------

@pytest.mark.parametrize("stage,action", [("cluster", "interrupt"), ("embed", "term"), ("ingest", "interrupt"),
                                          ("train", "term")])
def test_interrupt_prints_one_line_and_exits_130(chain, tmp_path, stage, action):
    root = chain["root"]
    run, point = {"cluster": (lambda: run_cluster(root / "corpus", tmp_path / "o"), "k4.pt"),
                  "embed": (lambda: run_embed(root / "vocab", tmp_path / "o"), "glove_d4.pt"),
                  "ingest": (lambda: run_ingest(chain["src"], tmp_path / "o"), "*.part"),
                  "train": (lambda: run_train(chain["task"], tmp_path / "o"), "split0.pt")}[stage]
    log = tmp_path / "child.log"
    status = in_child(lambda: run_script(lambda argv: run(), f"{stage}.py"), fault=f"{point}:{action}", log=log)
    text = log.read_text()
    assert status == 130 and "Traceback" not in text, text
    assert text.strip().splitlines()[-1] == f"{stage}.py: {INTERRUPTED}"


# --- one writer per run directory ------------------------------------------------------------------

def test_second_writer_is_refused_with_the_holders_pid_and_no_stale_lock(chain, tmp_path):
    """Two cluster.py runs with different k on one out=: the second is refused before it writes
    anything; once the first is killed (-9), its lock is gone and the directory is one run's."""
    root, out = chain["root"], tmp_path / "vocab"
    pid = os.fork()
    if pid == 0:
        try:
            os.environ["FACEVOCAB_FAULT"] = "centroids.pt:sleep"   # holds the directory mid-run
            _redirect(tmp_path / "child.log")
            torch.set_num_threads(1)
            run_cluster(root / "corpus", out)
        finally:
            os._exit(0)
    try:
        deadline = time.time() + 120
        while not list((out / "sweep").glob(".centroids.pt.tmp*")) and not list(out.glob(".centroids.pt.tmp*")):
            assert time.time() < deadline, (tmp_path / "child.log").read_text()
            time.sleep(0.2)
        with pytest.raises(RunDirError, match=f"pid {pid}"):
            cluster.main([f"corpus={root / 'corpus'}", f"out={out}", "sweep=[]", "k=2", "min_count=1", "device=cpu"])
        assert not (out / "tokens.pt").exists()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    run_cluster(root / "corpus", out)                 # the lock died with its holder
    same_vocab(root / "vocab", out)


def test_lock_can_wait_for_the_holder(tmp_path):
    pid = os.fork()
    if pid == 0:
        try:
            lock_dir(tmp_path / "run")
            time.sleep(1.5)
        finally:
            os._exit(0)
    time.sleep(0.5)
    start = time.time()
    open_run_dir(tmp_path / "run", __import__("omegaconf").OmegaConf.create({"a": 1}), wait=True)
    assert time.time() - start > 0.3
    os.waitpid(pid, 0)


# --- pool workers die with their parent ------------------------------------------------------------

def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ingest_workers_end_when_the_parent_is_killed(chain, tmp_path):
    src = write_csvs(tmp_path / "src", n_files=4, rows=30)
    pid = os.fork()
    if pid == 0:
        try:
            os.environ["FACEVOCAB_FAULT"] = "*.part:sleep"     # every worker stuck in its first file
            _redirect(tmp_path / "child.log")
            ingest.main([f"src={src}", f"out={tmp_path / 'out'}", "workers=2", "progress=false"])
        finally:
            os._exit(0)
    try:
        deadline = time.time() + 60
        while len(workers := _children(pid)) < 2 or not list((tmp_path / "out").rglob(".*.part.tmp*")):
            assert time.time() < deadline, (tmp_path / "child.log").read_text()
            time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "pool workers outlived their parent"
