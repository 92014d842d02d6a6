"""Progress of a long stage, with ETA: a tqdm bar on a terminal, plain lines when stderr is redirected.

    with progress(total=300, desc="k-means k=1000", unit="it") as bar:
        bar.update(1, inertia=f"{x:.4g}")

A redirected tqdm bar is one long line of carriage returns in a log file; here, when stderr is not a
terminal, the same updates print one line each (`k-means k=1000: 120/300 it (40%), 12 s, ETA 18 s,
inertia=...`) at most every `every` seconds, plus the last one. FACEVOCAB_PROGRESS=plain|bar|off
forces a form (tests use `off`). Only the main process of a torchrun job shows progress (`enabled`).
"""
from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

PLAIN_EVERY = 10.0  # seconds between plain lines


def _mode() -> str:
    forced = os.environ.get("FACEVOCAB_PROGRESS", "")
    if forced in ("plain", "bar", "off"):
        return forced
    return "bar" if sys.stderr.isatty() else "plain"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min {seconds % 60:02d} s"


class Progress:
    def __init__(self, *, total: int | None, desc: str, unit: str = "it", enabled: bool = True,
                 every: float = PLAIN_EVERY, initial: int = 0):
        self.mode = _mode() if enabled else "off"
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = self.start_n = self.shown = initial
        self.start = self.last = time.monotonic()
        self.first: tuple[float, int] | None = None   # (time, n) of the first update: the rate counts from there,
                                                     # so set-up before it (k-means++ init) does not skew the ETA
        self.postfix: dict = {}
        self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, initial=initial,
                        dynamic_ncols=True) if self.mode == "bar" else None

    def update(self, n: int = 1, **postfix) -> None:
        self.n += n
        if self.first is None:
            self.first = (time.monotonic(), self.n)
        self.postfix.update(postfix)
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(n)
        elif self.mode == "plain":
            now = time.monotonic()
            if now - self.last >= self.every or (self.total is not None and self.n >= self.total):
                self.last, self.shown = now, self.n
                print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float | None = None, final: bool = False) -> str:
        now = now or time.monotonic()
        elapsed = now - self.start
        since, base = self.first or (now, self.n)
        done = self.n - base                                    # units since the first update
        text = f"{self.desc}: {self.n}"
        if self.total and final and self.n < self.total:   # stopped early (k-means converged): no percentage
            text += f" {self.unit} (done, {self.total} at most), {_clock(elapsed)}"
        elif self.total:
            text += f"/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)"
            if 0 < done and self.n < self.total:
                text += f", {_clock(elapsed)}, ETA {_clock((now - since) / done * (self.total - self.n))}"
            else:
                text += f", {_clock(elapsed)}"
        else:
            text += f" {self.unit}, {_clock(elapsed)}"
        extra = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        return text + (f", {extra}" if extra else "")

    def write(self, message: str) -> None:
        """A message that does not break the bar."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.mode == "plain" and self.n > self.shown:   # the last state, once
            self.shown = self.n
            print(self.line(final=True), file=sys.stderr, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(**kwargs) -> Progress:
    return Progress(**kwargs)
