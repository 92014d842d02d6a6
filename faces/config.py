"""faces.py's one config schema (defaults in configs/faces.yaml; the paper's sizes in configs/paper/faces.yaml).

The model section is built from the registry, as train.py's is: one section per registered
`au_detector`, named as the model, typed by its config dataclass; `model=` picks one.
"""
from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Dict, List

from omegaconf import MISSING, DictConfig

import models  # noqa: F401  (fills the registry)
from faces.annotator import AnnotatorConfig
from faces.augment import AugmentConfig
from faces.crops import CropConfig
from faces.datasets import FinetuneSetConfig, PretrainSetConfig, RenderConfig
from faces.fit import FitConfig
from models.registry import get_model, known_models
from utils.config import ConfigError

DETECTOR_KIND = "au_detector"


@dataclass
class ScalingConfig:
    """Fung & McDuff's Tables IV and V: pretraining on subsets, each fine-tuned with the same CV."""
    images: List[int] = field(default_factory=list)       # subsets of N images (all identities)
    identities: List[int] = field(default_factory=list)   # all images of N identities


@dataclass
class Annotator(AnnotatorConfig):
    targets: Dict[str, float] = field(default_factory=dict)   # per-AU F1 % overriding Table III / DEFAULT_F1


@dataclass
class RunConfig:
    out: str = MISSING
    seed: int = 0
    device: str = "auto"
    threads: int = 0            # torch threads; 0 = 1 on the CPU, every core with CUDA
    workers: int = 2            # rendering / cropping processes (the output does not depend on it)
    progress: bool = True
    model: str = "au_cnn"
    render: RenderConfig = field(default_factory=RenderConfig)
    pretrain_set: PretrainSetConfig = field(default_factory=PretrainSetConfig)
    finetune_set: FinetuneSetConfig = field(default_factory=FinetuneSetConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    annotator: Annotator = field(default_factory=Annotator)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pretrain: FitConfig = field(default_factory=lambda: FitConfig(lr=0.005, max_epochs=500, patience=10))
    finetune: FitConfig = field(default_factory=lambda: FitConfig(lr=1e-4, max_epochs=500, patience=10))
    folds: int = 3
    val_share: float = 0.2      # of the fine-tuning training subjects, held out for early stopping
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    examples: int = 24          # faces shown in TensorBoard with their true and predicted AUs


FacesConfig = make_dataclass("FacesConfig", [
    (name, get_model(name).config, field(default_factory=get_model(name).config))
    for name in known_models(DETECTOR_KIND)], bases=(RunConfig,))

RESUMABLE_KEYS = ("device", "threads", "workers", "progress")


def check(cfg: DictConfig) -> None:
    """Values the types cannot check."""
    if cfg.model not in known_models(DETECTOR_KIND):
        raise ConfigError(f"model={cfg.model}: unknown AU detector; known: {', '.join(known_models(DETECTOR_KIND))}")
    if cfg.folds < 2:
        raise ConfigError(f"folds={cfg.folds}: at least 2")
    if cfg.finetune_set.subjects < cfg.folds + 1:
        raise ConfigError(f"finetune_set.subjects={cfg.finetune_set.subjects}: needs more than folds={cfg.folds}")
    if not 32 <= cfg.render.size <= 512:
        raise ConfigError(f"render.size={cfg.render.size}: 32..512 pixels")
    for key in ("images", "identities"):
        bad = [n for n in cfg.scaling[key] if n < 1]
        if bad:
            raise ConfigError(f"scaling.{key}: sizes must be positive, got {bad}")
    if max(list(cfg.scaling.identities) or [0]) > cfg.pretrain_set.identities:
        raise ConfigError(f"scaling.identities: {max(cfg.scaling.identities)} exceeds pretrain_set.identities="
                          f"{cfg.pretrain_set.identities}")
