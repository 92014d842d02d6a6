"""Bad inputs on tiny data: every artifact truncated, overwritten with garbage, emptied or replaced by a
malicious pickle gives one error naming the file (caches heal instead); a pickle's payload never runs;
frames edited after ingestion are refused; the user mistakes of the command line end in one line, exit 2.
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import cluster
import embed
import ingest
import train
from data.openface.corpus import FrameCorpus, corpus_fingerprint
from data.tasks.labels import read_labels
from glove.files import read_cooccurrence, read_embeddings
from tests.fault_chain import (chain, in_child, run_cluster, run_embed, run_ingest, run_train,  # noqa: F401
                               same_corpus, same_embed, same_train, same_vocab, write_csvs)
from tests.openface_files import openface_table
from tests.planted import make_corpus, planted_frames
from tests.tiny_tasks import task_overrides
from training.artifacts import read_inputs, read_metrics
from utils.cli import run_script
from utils.runs import open_run_dir
from vocab.token_set import load_tokens
from vocab.tokens import Tokens, Vocabulary


class Payload:
    """Unpickling this runs code: it creates the marker file."""
    marker = "/tmp/facevocab_payload_ran"

    def __reduce__(self):
        return (open, (self.marker, "w"))


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(len(data)).integers(0, 256, max(len(data), 64), dtype=np.uint8).tobytes())
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "pickle":        # a valid torch zip whose pickle runs code
        torch.save({"tokens": Payload()}, path)
    elif how == "rawpickle":     # a legacy (non-zip) pickle
        path.write_bytes(pickle.dumps(Payload()))


def copy_runs(chain, tmp_path: Path, *names: str) -> Path:
    """A private copy of some reference runs, free to damage (each a run of its own folder)."""
    for name in names:
        shutil.copytree(chain["root"] / name, tmp_path / name, symlinks=True)
    for saved in tmp_path.rglob("config.yaml"):
        saved.write_text(saved.read_text().replace(str(chain["root"]), str(tmp_path)))
    Path(Payload.marker).unlink(missing_ok=True)
    return tmp_path



def _tokens_fp(d: Path) -> tuple[str, int]:
    t = Tokens.load(d / "vocab")
    return t.fingerprint, t.vocab_size


READERS = {  # artifact -> (its path in a copy, the reader a stage calls)
    "tokens.pt": ("vocab/tokens.pt", lambda d: Tokens.load(d / "vocab")),
    "centroids.pt": ("vocab/centroids.pt", lambda d: Vocabulary.load(d / "vocab")),
    "vocab.tsv": ("vocab/vocab.tsv", lambda d: load_tokens(d / "vocab")),
    "cooccurrence.pt": ("embed/cooccurrence.pt", lambda d: read_cooccurrence(d / "embed")),
    "embeddings_d4.pt": ("embed/embeddings_d4.pt",
                         lambda d: read_embeddings(d / "embed", d=4, tokens_fingerprint=_tokens_fp(d)[0],
                                                   vocab_size=_tokens_fp(d)[1])),
    **{f"{name}.npy": (f"corpus/{name}.npy", lambda d: FrameCorpus.load(d / "corpus"))
       for name in ("frames", "timestamps", "gap_before", "offsets", "sequence_video")},
    "meta.json": ("corpus/meta.json", lambda d: FrameCorpus.load(d / "corpus")),
    "videos.txt": ("corpus/videos.txt", lambda d: FrameCorpus.load(d / "corpus")),
    "labels.csv": ("task/labels.csv", lambda d: read_labels(d / "task" / "labels.csv")),
    "config.yaml": ("vocab/config.yaml",
                    lambda d: open_run_dir(d / "vocab", OmegaConf.load(d / "corpus" / "config.yaml"))),
    "metrics.json": ("train/metrics.json", lambda d: read_metrics(d / "train" / "metrics.json")),
    "inputs.json": ("train/inputs.json", lambda d: read_inputs(d / "train" / "inputs.json")),
}
BINARY = {name for name in READERS if name.endswith((".pt", ".npy"))}
CASES = [(name, how) for name in READERS
         for how in ("truncated", "garbage", "empty", *(("pickle", "rawpickle") if name in BINARY else ()))]


NEEDS = {"embeddings_d4.pt": ("vocab",), "config.yaml": ("corpus",)}  # what a reader reads beside its file


@pytest.mark.parametrize("name,how", CASES, ids=[f"{n}-{h}" for n, h in CASES])
def test_damaged_artifact_is_one_error_naming_it(chain, tmp_path, name, how):
    rel, read = READERS[name]
    copy = copy_runs(chain, tmp_path, Path(rel).parts[0], *NEEDS.get(name, ()))
    damage(copy / rel, how)
    with pytest.raises((ValueError, OSError, KeyError, RuntimeError)) as err:   # RuntimeError: RunDirError
        read(copy)
    message = str(err.value)
    assert "\n" not in message and Path(rel).name in message, message
    assert not Path(Payload.marker).exists(), "the pickle's payload ran"


def test_frames_edited_after_ingestion_are_refused(chain, tmp_path):
    copy = copy_runs(chain, tmp_path, "corpus")
    frames = np.load(copy / "corpus" / "frames.npy")
    frames[3, 2] += 0.5                                            # a plausible value: only the fingerprint knows
    np.save(copy / "corpus" / "frames.npy", frames)
    with pytest.raises(ValueError, match="changed since ingestion"):
        FrameCorpus.load(copy / "corpus")
    with pytest.raises(ValueError, match="changed since ingestion"):
        FrameCorpus.load(copy / "corpus", sequences=range(0, 1))   # a torchrun rank's part: the stamp changed
    with pytest.raises(ValueError, match="changed since ingestion"):
        corpus_fingerprint(copy / "corpus")


def test_impossible_values_are_refused_at_ingestion_and_at_load(chain, tmp_path):
    copy = copy_runs(chain, tmp_path, "corpus")
    table = openface_table(40, seed=1)
    table.set(6, "AU12_r", "1.7e38")               # a flipped exponent byte, on a row the 5 fps grid takes
    table.write(tmp_path / "src2" / "a.csv")
    openface_table(40, seed=2).write(tmp_path / "src2" / "b.csv")
    corpus = ingest.ingest(tmp_path / "src2", tmp_path / "c", {"workers": 1, "progress": False})
    report = json.loads((tmp_path / "c" / "ingest_report.json").read_text())
    assert report["errors"][0]["file"] == "a.csv" and "line 8" in report["errors"][0]["error"]
    assert corpus.video_ids == ["b"]
    frames = np.load(copy / "corpus" / "frames.npy")
    frames[5, 0] = 1e30
    meta = json.loads((copy / "corpus" / "meta.json").read_text())
    loaded = FrameCorpus.load(copy / "corpus")
    bad = FrameCorpus(frames=torch.from_numpy(frames), timestamps=loaded.timestamps, gap_before=loaded.gap_before,
                      offsets=loaded.offsets, sequence_video=loaded.sequence_video, video_ids=loaded.video_ids,
                      meta=meta)
    bad.save(copy / "bad")                                         # a consistent fingerprint, an impossible value
    with pytest.raises(ValueError, match=r"outside the accepted range .*corpus row 5\), column AU01 = 1e\+30"):
        FrameCorpus.load(copy / "bad")


# --- caches heal -----------------------------------------------------------------------------------

HEALS = [("cluster", "vocab/sweep/k4.pt"), ("embed", "embed/checkpoints/glove_d4.pt"),
         ("embed", "embed/cooccurrence.pt"), ("embed", "embed/embeddings_d6.pt"), ("train", "train/splits/split1.pt"),
         ("ingest", "corpus/parts")]


@pytest.mark.parametrize("stage,rel", HEALS, ids=[r for _, r in HEALS])
@pytest.mark.parametrize("how", ["truncated", "garbage", "pickle"])
def test_damaged_cache_heals_on_the_rerun(chain, tmp_path, capsys, stage, rel, how):
    root = chain["root"]
    inputs = {"cluster": "corpus", "embed": "vocab", "train": "task", "ingest": "src"}[stage]
    copy = copy_runs(chain, tmp_path, Path(rel).parts[0], inputs)
    target = copy / rel
    if stage == "ingest":
        target = sorted(target.iterdir())[1]
    if not target.exists():                                        # a checkpoint: the reference run deleted it
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"PK\x03\x04 placeholder")
    damage(target, how)
    if stage == "ingest":
        (copy / "corpus" / "meta.json").unlink()                   # as if killed before the end: parts are read
    task = {key: value.replace(str(root), str(copy)) for key, value in chain["task"].items()}
    run = {"cluster": lambda: run_cluster(copy / "corpus", copy / "vocab"),
           "embed": lambda: run_embed(copy / "vocab", copy / "embed"),
           "train": lambda: run_train(task, copy / "train"),
           "ingest": lambda: run_ingest(copy / "src", copy / "corpus")}[stage]
    if stage == "embed" and "checkpoints" in rel:                  # a checkpoint is read only mid-dimension
        (copy / "embed" / "embeddings_d4.pt").unlink()
    if stage == "train":                                           # splits are read only by an unfinished run
        (copy / "train" / "metrics.json").unlink()
    run()
    said = capsys.readouterr().err
    assert target.name in said and "Traceback" not in said, said
    same = {"cluster": same_vocab, "embed": same_embed, "train": same_train, "ingest": same_corpus}[stage]
    same(root / {"cluster": "vocab", "embed": "embed", "train": "train", "ingest": "corpus"}[stage],
         copy / Path(rel).parts[0])
    assert not Path(Payload.marker).exists()


# --- mistakes on the command line: one line, exit 2 -------------------------------------------------

def _script(tmp_path, main, name, argv) -> tuple[int, str]:
    log = tmp_path / "out.log"
    status = in_child(lambda: run_script(main, name, argv), log=log)
    return status, log.read_text()


def test_user_mistakes_end_in_one_line_with_exit_2(chain, tmp_path):
    root = chain["root"]
    copy = copy_runs(chain, tmp_path / "copy", "vocab")
    (tmp_path / "bad.yaml").write_text("k: [1, 2\nsweep: 3\n")
    (tmp_path / "a_file").write_text("x")
    frames, _ = planted_frames(n=300, k=3, dim=14)
    make_corpus(frames, n_sequences=6).save(tmp_path / "c14")
    (tmp_path / "sweep.yaml").write_text("rows:\n  - {id: ../escape, model: random}\n")
    damage(copy / "vocab" / "tokens.pt", "pickle")
    (tmp_path / "empty_src").mkdir()
    write_csvs(tmp_path / "dup_src", n_files=1, rows=20)
    csv = next((tmp_path / "dup_src").rglob("*.csv"))
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0].replace("confidence", "AU12_r")] + lines[1:]) + "\n")
    shutil.copytree(root / "vocab", tmp_path / "mixed")        # centroids of one run, tokens.pt of another
    shutil.copy(Path(chain["task"]["tokens"]) / "tokens.pt", tmp_path / "mixed" / "tokens.pt")
    corpus = f"corpus={root / 'corpus'}"
    cases = {
        "a folder mixing two vocabularies": (cluster.main, "cluster.py", [corpus, f"vocab={tmp_path}/mixed",
                                                                          f"out={tmp_path}/o0"]),
        "malformed config=": (cluster.main, "cluster.py", [corpus, f"out={tmp_path}/o1", f"config={tmp_path}/bad.yaml"]),
        "malformed key=value": (cluster.main, "cluster.py", [corpus, f"out={tmp_path}/o2", "sweep=[1,"]),
        "max_iter=0": (cluster.main, "cluster.py", [corpus, f"out={tmp_path}/o3", "k=2", "max_iter=0"]),
        "out= a file": (cluster.main, "cluster.py", [corpus, f"out={tmp_path}/a_file", "k=2", "sweep=[]"]),
        "device=cuda": (cluster.main, "cluster.py", [corpus, f"out={tmp_path}/o4", "k=2", "device=cuda"]),
        "14-AU corpus, 17-AU vocabulary": (cluster.main, "cluster.py",
                                           [f"corpus={tmp_path}/c14", f"vocab={root / 'vocab'}", f"out={tmp_path}/o5"]),
        "malicious tokens.pt": (embed.main, "embed.py", [f"tokens={copy / 'vocab'}", f"out={tmp_path}/o6"]),
        "dims=[]": (embed.main, "embed.py", [f"tokens={root / 'vocab'}", f"out={tmp_path}/o7", "dims=[]"]),
        "train.lr=-1": (train.main, "train.py", [*task_overrides("task_a", chain["task"]), "train.lr=-1",
                                                 f"out={tmp_path}/o8"]),
        "tokens of another corpus": (train.main, "train.py", [*task_overrides("task_a", chain["task"]),
                                                              f"task_a.corpus={root / 'corpus'}", "model=bilstm_tokens",
                                                              f"out={tmp_path}/o9"]),
        "sweep row id outside": (train.main, "train.py", [f"sweep={tmp_path}/sweep.yaml", f"sweep_out={tmp_path}/o10"]),
        "no input file": (ingest.main, "ingest.py", [f"src={tmp_path}/empty_src", f"out={tmp_path}/o11"]),
        "every file fails": (ingest.main, "ingest.py", [f"src={tmp_path}/dup_src", f"out={tmp_path}/o12",
                                                        "progress=false"]),
    }
    for what, (main, name, argv) in cases.items():
        status, text = _script(tmp_path, main, name, argv)
        last = text.strip().splitlines()[-1] if text.strip() else ""
        assert status == 2 and "Traceback" not in text and last.startswith(f"{name}: "), f"{what}: {text}"
    assert not Path(Payload.marker).exists()
    # a corrected command into the same out= is not refused by the config the mistake would have left
    assert not (tmp_path / "o3" / "config.yaml").exists()
    assert "repeated" in json.loads((tmp_path / "o12" / "ingest_report.json").read_text())["errors"][0]["error"]
