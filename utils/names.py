"""The file names of every artifact that passes between stages, in one place (ARCHITECTURE.md has
their contents). A stage's folder holds the files of its own stage; `config.yaml` is in every one."""
from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"                   # every run directory (utils/runs.py)

# synth.py
LABELS = "labels.csv"
HIDDEN = "hidden.pt"
TRAITS = "traits.csv"
SYNTH_META = "meta.json"

# ingest.py: the frame corpus
CORPUS_ARRAYS = ("frames", "timestamps", "gap_before", "offsets", "sequence_video")  # <name>.npy
CORPUS_META = "meta.json"                # written last: marks a finished corpus
VIDEOS = "videos.txt"
INGEST_REPORT = "ingest_report.json"

# cluster.py: the vocabulary
CENTROIDS = "centroids.pt"
VOCAB_TSV = "vocab.tsv"
TOKENS = "tokens.pt"
ELBOW_CSV = "elbow.csv"
ELBOW_PNG = "elbow.png"
CENTROIDS_PNG = "centroids.png"
SUMMARY = "summary.json"                 # cluster.py and embed.py: what the run did

# embed.py: the embeddings
COOCCURRENCE = "cooccurrence.pt"
CREC_FILE = "cooccurrence.bin"
GLOVE_VOCAB = "vocab.txt"

# train.py
METRICS = "metrics.json"
BEST = "best.pt"
INPUTS = "inputs.json"
TRAIN_LOG = "train_log.jsonl"
RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"


def embeddings_file(d: int) -> str:
    return f"embeddings_d{d}.pt"


def vectors_file(d: int) -> str:
    return f"vectors_d{d}.txt"


def in_dir(path: str | Path, name: str) -> Path:
    """`path` is the file itself or the folder holding `name`: the one rule for every input key."""
    path = Path(path)
    return path / name if path.is_dir() or path.suffix == "" else path
