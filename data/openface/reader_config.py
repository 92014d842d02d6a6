"""What the OpenFace reader is asked to do: `ReaderConfig` (configs/ingest.yaml), its checking
(`as_reader_config`), the AU name lists and the `PRESETS` for other tools.

`PRESETS["pyfeat"]` (CLI: `config=configs/ingest_pyfeat.yaml`) reads py-feat Detector output: AU
columns without suffix (20 AUs, AU43 instead of AU45), `FaceScore` as the confidence, no timestamp
(frame numbers at `source_fps`). py-feat AU values are detection probabilities in [0, 1], not
OpenFace's 0-5 intensities: do not mix the two in one corpus.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from data.openface.format import AU_INTENSITY
from utils.config import ConfigError

# The 17 intensities of METHOD.md section 1, in order.
DEFAULT_AUS = AU_INTENSITY  # the 17 OpenFace intensities, in METHOD.md's order
# py-feat Detector AUs (probabilities, not intensities).
PYFEAT_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12",
              "AU14", "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43")

# Bump when parsing or filtering semantics change: cached ingestion parts then become stale.
READER_VERSION = 1


@dataclass
class ReaderConfig:
    """How one CSV becomes a sequence of frames. Column fields set to null are not read."""
    au_names: List[str] = field(default_factory=lambda: list(DEFAULT_AUS))
    au_column: str = "{au}_r"                   # column of each AU name: OpenFace intensities
    frame_column: Optional[str] = "frame"       # null: the row index
    timestamp_column: Optional[str] = "timestamp"
    confidence_column: Optional[str] = "confidence"  # null: every row is confident
    success_column: Optional[str] = "success"   # null: every row is tracked
    face_id_column: Optional[str] = "face_id"   # read when the file has it
    face_id: Optional[int] = 0                  # keep this face's rows (multi-face output); null: all
    min_confidence: float = 0.9                 # keep rows with confidence >= this
    require_success: bool = True                # drop rows with success != 1
    negative: str = "clip"                      # negative intensities: clip (to 0) | keep | drop (the row)
    # values a tool can write (OpenFace AU_r: 0..5, small negatives before its calibration, see
    # `negative`); one outside (1e30 from a flipped byte) is damage: the file is refused, its line named
    au_range: List[float] = field(default_factory=lambda: [-5.0, 5.0])
    fps: Optional[float] = 5.0                  # target rate; null keeps every kept row
    time_source: str = "auto"                   # auto | timestamp | frame
    source_fps: float = 30.0                    # rate of frame numbers when time comes from them
    min_source_fps: float = 1.0                 # auto: timestamps implying a rate outside this
    max_source_fps: float = 240.0               #   range are not trusted
    on_gap: str = "mark"                        # mark: one sequence, gap_before set | split: cut
    min_sequence_frames: int = 1                # split: drop shorter sequences


PRESETS: dict[str, dict[str, Any]] = {
    "openface": {},
    "pyfeat": {"au_names": list(PYFEAT_AUS), "au_column": "{au}", "timestamp_column": None,
               "confidence_column": "FaceScore", "success_column": None, "face_id_column": None},
}

_CHOICES = {"negative": ("clip", "keep", "drop"), "time_source": ("auto", "timestamp", "frame"),
            "on_gap": ("mark", "split")}


def as_reader_config(cfg: Any = None) -> ReaderConfig:
    """A checked ReaderConfig from None (the defaults), a ReaderConfig, a dataclass or DictConfig
    holding its fields among others (the ingest config), or a dict of its fields. A wrong key,
    type or value raises ConfigError naming the key."""
    if cfg is None:
        rc = ReaderConfig()
    elif type(cfg) is ReaderConfig:  # the per-file fast path: no OmegaConf
        rc = cfg
    elif isinstance(cfg, DictConfig) and issubclass(OmegaConf.get_type(cfg) or dict, ReaderConfig):
        # a structured config of this schema (or the ingest one): OmegaConf checked the types
        values = {f.name: getattr(cfg, f.name) for f in fields(ReaderConfig)}
        rc = ReaderConfig(**{**values, "au_names": [str(a) for a in values["au_names"]],
                             "au_range": [float(v) for v in values["au_range"]]})
    else:
        names = [f.name for f in fields(ReaderConfig)]
        if isinstance(cfg, dict):
            unknown = sorted(set(cfg) - set(names))
            if unknown:
                raise ConfigError(f"unknown reader config key(s): {', '.join(unknown)}")
            layer = dict(cfg)
        else:
            layer = {n: getattr(cfg, n) for n in names if hasattr(cfg, n)}
        try:
            rc = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ReaderConfig), layer))
        except OmegaConfBaseException as err:
            reason = str(getattr(err, "msg", err)).splitlines()[0]
            raise ConfigError(f"reader config key '{getattr(err, 'full_key', '?')}': {reason}") from None
    for key, allowed in _CHOICES.items():
        if getattr(rc, key) not in allowed:
            raise ConfigError(f"{key}={getattr(rc, key)!r}: expected one of {', '.join(allowed)}")
    checks = [("au_names", len(rc.au_names) > 0 and len(set(rc.au_names)) == len(rc.au_names),
               "a non-empty list without repeats"),
              ("au_column", "{au}" in rc.au_column, "a pattern containing {au}"),
              ("fps", rc.fps is None or rc.fps > 0, "positive or null"),
              ("source_fps", rc.source_fps > 0, "positive"),
              ("max_source_fps", 0 <= rc.min_source_fps < rc.max_source_fps, "above min_source_fps"),
              ("min_sequence_frames", rc.min_sequence_frames >= 1, "at least 1"),
              ("min_confidence", 0 <= rc.min_confidence <= 1, "in [0, 1]"),
              ("au_range", len(rc.au_range) == 2 and rc.au_range[0] < rc.au_range[1], "[low, high] with low < high")]
    for key, ok, what in checks:
        if not ok:
            raise ConfigError(f"{key}={getattr(rc, key)!r}: expected {what}")
    return rc


def reader_hash(cfg: ReaderConfig) -> str:
    """Identifies everything that decides a file's output: the reader config and READER_VERSION."""
    blob = json.dumps({"version": READER_VERSION, **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
