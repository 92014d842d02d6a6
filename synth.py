"""Synthetic data: OpenFace CSVs with known hidden structure and per-video labels (the embedded default).

    python synth.py kind=pretrain|task_a|task_b out=DIR [key=value ...]   (defaults: configs/synth.yaml)

Config schema: `data.synth.generate.SynthConfig`. What is written: ARCHITECTURE.md, "Synthetic datasets".
"""
from omegaconf import OmegaConf

from data.synth.generate import DEFAULTS, SynthConfig, generate
from utils.cli import run_script
from utils.config import ConfigError, load_config


def main(argv: list[str]) -> None:
    cfg = load_config(SynthConfig, argv, DEFAULTS)
    if OmegaConf.is_missing(cfg, "out"):
        raise ConfigError("out=DIR is required (where the dataset is written)")
    generate(cfg.out, cfg)


if __name__ == "__main__":
    run_script(main, "synth.py")
