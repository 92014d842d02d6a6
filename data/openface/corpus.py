"""The frame corpus on disk: every kept frame of every video in one array.

A corpus directory holds
    frames.npy          float32 (N, n_AU)   AU intensities of all kept frames, videos concatenated
    timestamps.npy      float64 (N,)        seconds from the start of each video
    gap_before.npy      bool    (N,)        frame follows one or more dropped frames (gap marker)
    offsets.npy         int64   (S+1,)      sequence s is frames[offsets[s]:offsets[s+1]]
    sequence_video.npy  int64   (S,)        index into videos.txt of the video each sequence came from
    videos.txt                              video ids (path of the CSV relative to src), one per line
    meta.json                               AU names, fps, source folder, fingerprint, ingest config
    ingest_report.json                      per file: rows read, kept, dropped by reason, errors

With `on_gap=mark` (default) each video is one sequence and gaps are marked; with `on_gap=split`
a video is cut into several sequences at its gaps. Loading is a few memory-mapped reads and one copy
to the device: no Python loop over videos. `load(..., sequences=range)` reads only those
sequences' rows (memory-mapped), as one rank of a torchrun job does with its shard.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils import names
from utils.artifacts import ArtifactError, check_fields, load_json, load_npy
from utils.io import fingerprint, save_json, save_npy, save_text

ARRAYS = names.CORPUS_ARRAYS
DTYPES = {"frames": np.float32, "timestamps": np.float64, "gap_before": np.bool_, "offsets": np.int64,
          "sequence_video": np.int64}


@dataclass
class FrameCorpus:
    frames: torch.Tensor          # (N, n_AU) float32
    timestamps: torch.Tensor      # (N,) float64
    gap_before: torch.Tensor      # (N,) bool
    offsets: torch.Tensor         # (S+1,) int64
    sequence_video: torch.Tensor  # (S,) int64
    video_ids: list[str]
    meta: dict
    shard: range | None = None    # load(sequences=...): which sequences of the corpus on disk these are
    first_row: int = 0            # and the corpus row of their first frame

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def n_sequences(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def au_names(self) -> list[str]:
        return list(self.meta["au_names"])

    @property
    def sequence_ids(self) -> list[str]:
        """Video id of each sequence (with `on_gap=split` several sequences share one video)."""
        return [self.video_ids[v] for v in self.sequence_video.tolist()]

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    def to(self, device: torch.device | str) -> "FrameCorpus":
        moved = {name: getattr(self, name).to(device) for name in ARRAYS}
        return FrameCorpus(**moved, video_ids=self.video_ids, meta=self.meta, shard=self.shard,
                           first_row=self.first_row)

    def save(self, out: str | Path) -> None:
        """Arrays first, `meta.json` last: a corpus without meta.json is incomplete."""
        if self.shard is not None:
            raise ValueError(f"a shard of a corpus (sequences {self.shard.start}..{self.shard.stop - 1}) "
                             "is not a corpus: its meta holds the whole corpus's fingerprint")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name in ARRAYS:
            save_npy(getattr(self, name).cpu().numpy(), out / f"{name}.npy")
        save_text("".join(v + "\n" for v in self.video_ids), out / names.VIDEOS)
        # the fingerprint is of the arrays as saved, whatever the caller put in meta
        self.meta["fingerprint"] = self.compute_fingerprint(self.frames.cpu().numpy(), self.offsets.cpu().numpy())
        self.meta["stamp"] = _stamp(out)
        save_json(self.meta, out / names.CORPUS_META)

    @staticmethod
    def compute_fingerprint(frames: np.ndarray, offsets: np.ndarray) -> str:
        return fingerprint(frames, offsets)

    @staticmethod
    def read_offsets(path: str | Path) -> torch.Tensor:
        """(S+1,) int64 offsets alone: enough to choose a shard of sequences before loading it."""
        path = _finished(Path(path))
        return torch.from_numpy(np.array(load_npy(path / "offsets.npy", "corpus offsets")))

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu", *,
             sequences: range | None = None) -> "FrameCorpus":
        """The corpus in `path`; with `sequences` (a contiguous range, e.g. utils.distributed.shard_sequences)
        only those sequences, their offsets starting at 0, reading only their rows of the per-frame arrays."""
        path = _finished(Path(path))
        meta = read_meta(path)
        mapped = {name: load_npy(path / f"{name}.npy", f"corpus {name}", mmap=True) for name in ARRAYS}
        for name, a in mapped.items():
            if a.dtype != DTYPES[name] or a.ndim != (2 if name == "frames" else 1):
                raise ArtifactError(f"{path / name}.npy: damaged corpus array ({a.dtype} of shape {a.shape})")
        offsets = np.array(mapped.pop("offsets"))                          # (S+1,) small: read whole
        rows, S = len(mapped["frames"]), len(offsets) - 1
        if S < 0 or int(offsets[0]) != 0 or int(offsets[-1]) != rows:     # checked before a part is cut out
            raise ValueError(f"corpus {path}: inconsistent corpus: offsets must run from 0 to {rows} (frames.npy rows)")
        _verify(path, meta, mapped["frames"], offsets, whole=sequences is None)
        part = range(S) if sequences is None else sequences
        if part.step != 1 or not 0 <= part.start <= part.stop <= S:
            raise ValueError(f"corpus {path}: sequences {part} is not a contiguous part of its {S} sequences")
        lo, hi = int(offsets[part.start]), int(offsets[part.stop])
        sequence_video = mapped.pop("sequence_video")
        arrays = {name: np.array(a[lo:hi]) for name, a in mapped.items()}      # reads only these rows
        arrays["offsets"] = offsets[part.start:part.stop + 1] - lo
        arrays["sequence_video"] = np.array(sequence_video[part.start:part.stop])
        try:
            video_ids = (path / names.VIDEOS).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            raise ArtifactError(f"{path / names.VIDEOS}: missing or not text; ingest the corpus again") from None
        corpus = cls(**{name: torch.from_numpy(arrays[name]).to(device) for name in ARRAYS},
                     video_ids=video_ids, meta=meta, shard=None if sequences is None else part, first_row=lo)
        corpus.validate(path)
        corpus.check_range(path)
        return corpus

    def check_range(self, where: str | Path) -> None:
        """AU values outside the reader's accepted range (meta `reader.au_range`, OpenFace 0..5) are not
        intensities: a flipped byte or a damaged file. Name the video, its frame and the AU."""
        if self.timestamps.numel() and bool((self.timestamps < 0).any()):
            row = int(torch.nonzero(self.timestamps < 0)[0, 0])
            raise ArtifactError(f"corpus {where}: negative timestamp at corpus row {self.first_row + row}; "
                                f"the corpus is damaged: ingest it again")
        lo, hi = self.meta.get("reader", {}).get("au_range") or (-np.inf, np.inf)
        bad = ~((self.frames >= lo) & (self.frames <= hi))        # NaN too
        if not bool(bad.any()):
            return
        raise ArtifactError(f"corpus {where}: {int(bad.any(1).sum())} frames hold values outside the accepted "
                            f"range [{lo}, {hi}] (or NaN); the first is {self.locate_first(bad)}")

    def locate_first(self, bad: torch.Tensor) -> str:
        """Where the first True of `bad` (N, D) is: the frame within its video, the corpus row, the AU."""
        row, col = (int(v) for v in torch.nonzero(bad)[0])
        s = int(torch.searchsorted(self.offsets, torch.tensor(row, device=self.offsets.device), right=True)) - 1
        return (f"frame {row - int(self.offsets[s])} of video {self.sequence_ids[s]} (corpus row "
                f"{self.first_row + row}), column {self.au_names[col]} = {float(self.frames[row, col]):g}")

    def validate(self, where: str | Path = "corpus") -> None:
        n, s = self.n_frames, self.n_sequences
        problems = []
        if self.frames.ndim != 2 or self.frames.shape[1] != len(self.meta["au_names"]):
            problems.append(f"frames has shape {tuple(self.frames.shape)} but {len(self.meta['au_names'])} AU names")
        if self.timestamps.shape != (n,) or self.gap_before.shape != (n,):
            problems.append("timestamps/gap_before do not have one entry per frame")
        if s < 0 or int(self.offsets[0]) != 0 or int(self.offsets[-1]) != n:
            problems.append(f"offsets must run from 0 to {n}")
        elif s > 0 and bool((self.offsets[1:] < self.offsets[:-1]).any()):
            problems.append("offsets decrease")
        if self.sequence_video.shape != (max(s, 0),):
            problems.append("sequence_video does not have one entry per sequence")
        elif s > 0 and (int(self.sequence_video.min()) < 0 or int(self.sequence_video.max()) >= len(self.video_ids)):
            problems.append("sequence_video points outside videos.txt")
        if problems:
            raise ValueError(f"{where}: inconsistent corpus: " + "; ".join(problems))


def read_meta(path: str | Path) -> dict:
    """The one reader of a corpus's meta.json (written last: its presence marks a finished corpus)."""
    file = Path(path) / names.CORPUS_META
    meta = check_fields(load_json(file, "corpus meta"), file, "corpus meta",
                        {"au_names": list, "fingerprint": str})
    return meta


def corpus_fingerprint(path: str | Path) -> str:
    """The fingerprint of the corpus in `path`, verified against its frames (cheap while the arrays'
    stamp holds; see `_verify`)."""
    path = _finished(Path(path))
    meta = read_meta(path)
    frames = load_npy(path / "frames.npy", "corpus frames", mmap=True)
    offsets = np.array(load_npy(path / "offsets.npy", "corpus offsets"))
    _verify(path, meta, frames, offsets, whole=False)
    return meta["fingerprint"]


def _stamp(path: Path) -> dict:
    """Size and modification time of each array: a file rewritten since changes them."""
    return {name: [st.st_size, st.st_mtime_ns] for name in ARRAYS for st in [(path / f"{name}.npy").stat()]}


def _verify(path: Path, meta: dict, frames: np.ndarray, offsets: np.ndarray, *, whole: bool) -> None:
    """The fingerprint in meta.json must be the one of the frames on disk. Loading the whole corpus
    always recomputes it (one pass over the bytes already read); a part of it (a torchrun rank) or a
    fingerprint lookup recomputes it only when the arrays' size or mtime differ from their stamp."""
    if not whole and meta.get("stamp") == _stamp(path):
        return
    actual = FrameCorpus.compute_fingerprint(frames, offsets)
    if actual != meta["fingerprint"]:
        raise ArtifactError(f"corpus {path}: frames.npy/offsets.npy changed since ingestion (fingerprint {actual}, "
                            f"meta.json says {meta['fingerprint']}); ingest the corpus again")


def _finished(path: Path) -> Path:
    if not (path / names.CORPUS_META).exists():
        what = "does not exist" if not path.exists() else "is not a finished corpus (no meta.json)"
        raise FileNotFoundError(f"corpus {path} {what}; build one with `python ingest.py src=DIR out={path}`")
    return path
