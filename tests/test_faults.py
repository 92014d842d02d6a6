"""Fault injection on tiny data: every stage killed (-9) at chosen writes then rerun gives the artifacts
of an uninterrupted run; Ctrl-C / SIGTERM end in one line and exit 130; run directories have one writer;
pool workers die with their parent.

A stage runs in a forked child of this test process (tests/fault_chain.py), with FACEVOCAB_FAULT
(utils/faults.py) choosing the write at which it is killed; the rerun happens in this process.
`kill -9` is real: the child dies by SIGKILL with its temp file left.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

import cluster
import ingest
from tests.fault_chain import (_redirect, chain, in_child, run_cluster, run_embed, run_ingest, run_train,  # noqa: F401
                               same_corpus, same_embed, same_train, same_vocab, write_csvs)
from utils.cli import INTERRUPTED, run_script
from utils.runs import RunDirError, lock_dir, open_run_dir

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


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
