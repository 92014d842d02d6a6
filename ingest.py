"""Frames: read a folder tree of OpenFace CSVs into one frame corpus.

    python ingest.py src=CSV_DIR out=DIR [key=value ...]      (defaults: configs/ingest.yaml)

Config schema: `data.openface.ingest.IngestConfig` (the reader's fields plus src, out, workers).
Writes the corpus (data/openface/corpus.py) and `ingest_report.json`; resumes an interrupted run.
"""
from pathlib import Path

from omegaconf import OmegaConf

from data.openface.corpus import FrameCorpus
from data.openface.ingest import DEFAULTS, IngestConfig, ingest, read_report
from utils.cli import run_script
from utils.config import ConfigError, load_config
from utils import names


def main(argv: list[str]) -> FrameCorpus:
    cfg = load_config(IngestConfig, argv, DEFAULTS)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(missing)} (python ingest.py src=DIR out=DIR)")
    corpus = ingest(cfg.src, cfg.out, cfg)
    report = read_report(cfg.out)["totals"]
    dropped = ", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v) or "none"
    print(f"{cfg.out}: {report['files']} files ({report['files_failed']} failed, {report['files_empty']} empty), "
          f"{corpus.meta['n_videos']} videos, {corpus.n_sequences} sequences, {corpus.n_frames} frames "
          f"({'every kept row' if cfg.fps is None else f'at {cfg.fps:g} fps'}) from {report['rows_read']} rows; "
          f"dropped: {dropped}")
    where = Path(cfg.out) / names.INGEST_REPORT
    if report["files"] == 0:       # success on nothing would let the next stage fail far from the cause
        raise FileNotFoundError(f"src={cfg.src}: no *.csv file under it (report: {where})")
    if report["files_failed"] == report["files"]:
        raise ValueError(f"src={cfg.src}: every one of the {report['files']} files failed, the first with "
                         f"{read_report(cfg.out)['errors'][0]['error']!r} (report: {where})")
    return corpus


if __name__ == "__main__":
    run_script(main, "ingest.py")
