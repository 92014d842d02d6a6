"""Synthetic data: OpenFace CSVs with known hidden structure and per-video labels (the embedded default).

    python synth.py kind=pretrain|task_a|task_b out=DIR [key=value ...]   (defaults: configs/synth.yaml)
    python synth.py ... vocab=VOCAB_DIR            the states at a vocabulary's centres, shares from its counts
    python synth.py calibrate=REF [calibrate_motion=CORPUS] out=DIR   fit the calibration to a real reference
                                                   (writes DIR/calibration.yaml: use it as calibration_file=)

Config schema: `data.synth.generate.SynthConfig`. What is written: ARCHITECTURE.md, "Synthetic datasets".
"""
from omegaconf import OmegaConf

from data.synth.calibrate import calibrate
from data.synth.generate import generate, load_synth_config
from utils.cli import run_script
from utils.config import ConfigError


def main(argv: list[str]) -> None:
    cfg = load_synth_config(argv)
    if OmegaConf.is_missing(cfg, "out"):
        raise ConfigError("out=DIR is required (where the dataset, or with calibrate= the calibration, is written)")
    if cfg.calibrate:
        calibrate(cfg)
    else:
        generate(cfg.out, cfg)


if __name__ == "__main__":
    run_script(main, "synth.py")
