"""The calibration file: the fitted figures of the behaviour model, one YAML artifact.

    cal = read_calibration("configs/synth_calibration.yaml")     # what synth.py's calibration_file= names

A calibration is data, like a vocabulary: data/synth/calibrate.py writes one fitted to a real
reference, the generator reads one. It stays out of the OmegaConf schema on purpose: a thousand
numbers as config nodes cost seconds per merge. Every run of `generate` copies the file it used into
its run directory and refuses to reuse a directory made with another one. AU vectors are in
AU_INTENSITY order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml

from data.openface.format import AU_INTENSITY
from utils.config import CONFIG_DIR, ConfigError

DEFAULT_CALIBRATION = "configs/synth_calibration.yaml"


@dataclass
class Calibration:
    source: str = ""
    states: list = field(default_factory=list)     # (n_states, 17) prototypes at apex (rest included)
    shares: list = field(default_factory=list)     # (n_states,) target share of frames
    log_pref: list = field(default_factory=list)   # (n_states,) fitted entry preferences; [] = from shares
    rest: list = field(default_factory=list)       # (17,) resting level
    offset: list = field(default_factory=list)     # (17,) added before OpenFace's floor at 0
    jitter: list = field(default_factory=list)     # (17,) sd of the frame jitter
    jitter_seconds: float = 0.1                    # its smoothing width
    dwell_scale: float = 1.0                       # multiplies the families' median dwell
    fit: dict = field(default_factory=dict)        # figures the fit reached on its probe corpus

    def vector(self, key: str, n: int, where: str = "calibration") -> np.ndarray:
        v = np.asarray(getattr(self, key), dtype=np.float64)
        if v.shape != (n,) or not np.isfinite(v).all():
            raise ConfigError(f"{where}: '{key}' must be {n} finite numbers (got shape {v.shape})")
        return v

    def prototypes(self, where: str = "calibration") -> np.ndarray:
        p = np.asarray(self.states, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != len(AU_INTENSITY) or len(p) == 0:
            raise ConfigError(f"{where}: 'states' must be rows of {len(AU_INTENSITY)} AU values (got shape {p.shape})")
        return p


def resolve(path: str | Path) -> Path:
    """A calibration path as given, or relative to the repository (configs/... works from anywhere)."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else CONFIG_DIR.parent / p


def read_calibration(path: str | Path) -> Calibration:
    p = resolve(path)
    if not p.exists():
        raise ConfigError(f"calibration_file={path}: no such file")
    raw = yaml.safe_load(p.read_text()) or {}
    known = {f.name for f in fields(Calibration)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{p}: unknown calibration key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    return Calibration(**raw)


def calibration_yaml(cal: Calibration, header: str = "") -> str:
    """YAML with each AU vector on one line (a state per row), keys in the dataclass's order."""
    return header + yaml.safe_dump(asdict(cal), default_flow_style=None, sort_keys=False, width=250)
