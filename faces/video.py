"""Video files and image folders as frame sources (PyAV for video, FFmpeg inside its wheel).

    write_video(path, frames, fps=20.0)         # (N, H, W, 3) uint8 RGB -> MPEG-4 Part 2 in AVI or MP4
    for frame in read_frames(path): ...         # a video file or a folder of images, RGB uint8
    count_frames(path)

Writes are atomic (a temp file renamed at the end), so an interrupted render never leaves a
truncated video that a rerun would take for finished.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from utils.io import atomic_path

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_FORMATS = {".avi": "avi", ".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".m4v": "mp4"}


def write_video(path: str | Path, frames: np.ndarray, *, fps: float, bit_rate: int = 600_000) -> Path:
    """Encode RGB frames (N, H, W, 3) uint8 with FFmpeg's mpeg4 encoder (lossy, like the datasets')."""
    path = Path(path)
    frames = np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown video suffix; use one of {', '.join(_FORMATS)}")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=fmt) as out:
            stream = out.add_stream("mpeg4", rate=int(round(fps)))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt, stream.bit_rate = "yuv420p", bit_rate
            for f in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            out.mux(stream.encode())
    return path


def _numbered(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]

    def key(p: Path):
        digits = re.findall(r"\d+", p.stem)
        return (int(digits[-1]) if digits else -1, p.name)
    return sorted(files, key=key)


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H, W, 3) of a video file, or of a folder of images in frame-number order."""
    path = Path(path)
    if path.is_dir():
        for p in _numbered(path):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"{p}: not a readable image")
            yield img[..., ::-1].copy()
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file or image folder")
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as err:
        raise ValueError(f"{path}: cannot decode video ({err})") from None


def count_frames(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return len(_numbered(path))
    return sum(1 for _ in read_frames(path))


def read_all(path: str | Path) -> np.ndarray:
    """(N, H, W, 3) uint8: every frame (fine for the short videos of the demo)."""
    frames = list(read_frames(path))
    if not frames:
        raise ValueError(f"{path}: holds no frames")
    return np.stack(frames)
