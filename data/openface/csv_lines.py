"""The text of one CSV in memory (`CsvText`): header names, the byte span of every data line, and
chosen fields of chosen lines as float64, without tokenising whole lines.

    text = CsvText.read(path, reuse_buffer=True)
    values, short = text.scan(cols, rows)      # fast: windows at the ends of lines, no count check
    values, status = text.fields(rows, cols)   # each line's field count checked first

Speed: an OpenFace FeatureExtraction row has 714 fields of which ~20 are needed, at the two ends
of the line, so a line is reached by splitting a small window at its start and one at its end
(`_plan` picks the split); a line is split in full only where a window falls short. Files are
read into a reused per-thread buffer (`_read_reusing`). Unparseable values (`-nan(ind)`, empty)
read as NaN; UTF-8 BOM, CRLF, classic Mac line ends, blank lines and a missing final newline are
handled. Row numbers (`line_no`) are file lines: the header is line 1.
"""
from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


class MissingColumnsError(ValueError):
    """Required columns are not in the header; the message names the file and the columns."""

    def __init__(self, path: str, missing: list[str], hint: str = ""):
        self.path, self.missing = path, missing
        super().__init__(f"{path}: missing column(s) {', '.join(missing)}{hint}")


def _plan(cols: Sequence[int], n: int) -> tuple[int, int, list[int]]:
    """Reach fields `cols` of an n-field line with two bounded splits: the first c fields from the
    front, the last m from the back (c + m smallest). Returns c, m and where each column lands in
    the c + m fields taken."""
    s = sorted(set(cols))
    c, m = min(((s[i - 1] + 1 if i else 0, n - s[i] if i < len(s) else 0) for i in range(len(s) + 1)),
               key=sum)
    if c + m >= n:
        c, m = n, 0
    return c, m, [j if j < c else c + j - (n - m) for j in cols]


def _floats(cells: list) -> np.ndarray:
    """float64 of byte strings; NaN for anything unparseable (`-nan(ind)`, empty, `1.#IND`).
    `float` accepts the surrounding spaces and CR of OpenFace fields."""
    try:
        return np.fromiter(map(float, cells), np.float64, len(cells))
    except ValueError:
        out = np.empty(len(cells))
        for i, x in enumerate(cells):
            try:
                out[i] = float(x)
            except ValueError:
                out[i] = np.nan
        return out


def _table(cells: list, n: int, width: int, pos: Sequence[int]) -> np.ndarray:
    """(n, len(pos)) float64 from `cells`, `width` cells per row, columns at `pos`."""
    out = np.empty((n, len(pos)))
    for j, p in enumerate(pos):
        out[:, j] = _floats(cells[p::width])
    return out


_scratch = threading.local()
_KEEP_BUFFER = 1 << 28  # bytes


def _read_reusing(path: str | Path) -> tuple[bytes | bytearray, int]:
    """The file's bytes in this thread's reusable buffer, and their count. A fresh `bytes` per file
    costs page faults on a new allocation of its size; reading into warm memory does not."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        buf = getattr(_scratch, "buf", None)
        if buf is None or len(buf) < size + 1:
            buf = _scratch.buf = bytearray(max(size + 1, 1 << 20))
        view = memoryview(buf)
        got, total = 1, 0
        while got and total < len(buf):  # until EOF (the file may have grown since fstat)
            got = f.readinto(view[total:])
            total += got
        if total == len(buf):  # grew past the buffer: read it plainly
            data = Path(path).read_bytes()
            return data, len(data)
        if len(buf) > _KEEP_BUFFER:  # do not hold on to the memory of an unusually big file
            _scratch.buf = None
        return buf, total


class CsvText:
    """One CSV in memory: the header's column names and the byte span of every data line.

    `data` may be longer than the file (a reused buffer): only its first `size` bytes count."""

    def __init__(self, path: str | Path, data: bytes | bytearray, size: Optional[int] = None):
        self.path = str(path)
        size = len(data) if size is None else size
        start = 3 if data[:3] == b"\xef\xbb\xbf" else 0
        if data.find(b"\n", 0, size) < 0 and data.find(b"\r", 0, size) >= 0:  # classic Mac line ends
            data = bytes(data[:size]).replace(b"\r", b"\n")
        self.data, self.size = data, size
        header_end = data.find(b"\n", start, size)
        header_end = size if header_end < 0 else header_end
        header = bytes(data[start:header_end]).decode("utf-8", "replace")
        self.columns = [c.strip(' \t\r"') for c in header.split(",")] if header.strip() else []
        self.n_fields = len(self.columns)
        self._index = {}
        for i, c in enumerate(self.columns):
            self._index.setdefault(c, i)
        self.starts, self.ends, self.line_no = self._lines(header_end + 1)

    @classmethod
    def read(cls, path: str | Path, *, reuse_buffer: bool = False) -> "CsvText":
        """`reuse_buffer`: read into this thread's scratch buffer (faster); the object is then
        valid only until the next such read in the thread."""
        if reuse_buffer:
            return cls(path, *_read_reusing(path))
        return cls(path, Path(path).read_bytes())

    def _lines(self, pos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, size, find = self.data, self.size, self.data.find
        ends: list = []
        put = ends.append
        first = pos
        while pos < size:
            end = find(b"\n", pos, size)
            if end < 0:
                end = size
            put(end)
            pos = end + 1
        ends = np.array(ends, dtype=np.int64)
        starts = np.concatenate([[first], ends[:-1] + 1]).astype(np.int64)[:ends.size]
        number = np.arange(ends.size, dtype=np.int64) + 2  # the header is line 1
        short = np.flatnonzero(ends - starts < 8)
        blank = [i for i in short.tolist() if not d[starts[i]:ends[i]].strip()]
        if blank:  # skip blank lines; row numbers stay file lines
            keep = np.ones(ends.size, dtype=bool)
            keep[blank] = False
            starts, ends, number = starts[keep], ends[keep], number[keep]
        return starts, ends, number

    @property
    def n_rows(self) -> int:
        return len(self.starts)

    @property
    def mean_line(self) -> float:
        return float(self.ends[-1] - self.starts[0]) / self.n_rows if self.n_rows else 0.0

    def index(self, name: Optional[str]) -> Optional[int]:
        return None if name is None else self._index.get(name)

    def require(self, names: Sequence[str]) -> list[int]:
        repeated = sorted(c for c, n in Counter(self.columns).items() if n > 1 and c)
        if repeated:   # which of the two would be read is a guess: refuse the file
            raise ValueError(f"{self.path}: column name(s) repeated in the header: {', '.join(repeated)}")
        missing = [n for n in names if n not in self._index]
        if missing:
            hint = ""
            bare = [n for n in missing if n not in self._index and n.split("_")[0] in self._index]
            if bare:
                hint = (f" (the file has {bare[0].split('_')[0]} without a suffix, as py-feat writes:"
                        " read it with config=configs/ingest_pyfeat.yaml or PRESETS['pyfeat'])")
            raise MissingColumnsError(self.path, missing, hint)
        return [self._index[n] for n in names]

    def scan(self, cols: Sequence[int], rows: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Fields `cols` of every row (or of `rows`), through small windows at the ends of lines.

        Returns values (n, len(cols)) float64 and short (n,) bool: lines with too few fields to
        reach them. The field count is not checked (see `fields`)."""
        idx = np.arange(self.n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        n, k = idx.size, len(cols)
        short = np.zeros(n, dtype=bool)
        if k == 0 or n == 0:
            return np.zeros((n, k)), short
        c, m, pos = _plan(cols, self.n_fields)
        d = self.data
        if m == 0 and c < self.n_fields:
            # The common case (OpenFace: frame, face_id, timestamp lead the line): a window just
            # wider than the first line's first c fields. A line whose c fields do not fit (or a
            # short line) gives a split of c parts or fewer, and the loop below redoes the file.
            first = d[self.starts[0]:self.ends[0]].split(b",", c)
            hw = 2 * (len(first[0]) + sum(map(len, first[1:c])) + c) + 16
            cells: list = []
            put = cells.extend
            ends = self.ends[idx]
            if bool(np.all(ends - self.starts[idx] > hw)):
                for s in self.starts[idx].tolist():
                    put(d[s:s + hw].split(b",", c))
                if len(cells) == n * (c + 1):
                    return _table(cells, n, c + 1, pos), short
        hw, tw = self._windows(c, m)
        need = c + 1 if c < self.n_fields else c   # parts of a head split that reaches field c-1
        blank = [b""] * (c + m)
        cells: list = []
        put = cells.extend
        for i, (s, e) in enumerate(zip(self.starts[idx].tolist(), self.ends[idx].tolist())):
            if c:
                head = d[s:min(e, s + hw)].split(b",", c)
                if len(head) < need and e > s + hw:
                    head = d[s:e].split(b",", c)
                if len(head) < need:
                    short[i] = True
                    put(blank)
                    continue
                put(head[:c])
            if m:
                tail = d[max(s, e - tw):e].rsplit(b",", m)
                if len(tail) <= m and e - tw > s:
                    tail = d[s:e].rsplit(b",", m)
                if len(tail) <= m:
                    short[i] = True
                    put(blank[:m])
                    continue
                put(tail[1:])
        return _table(cells, n, c + m, pos), short

    def _windows(self, c: int, m: int) -> tuple[int, int]:
        """Bytes that surely hold the first c / last m fields of a typical line: three times the
        first line's mean field width, plus slack. Where they do not, lines are split in full."""
        width = (int(self.ends[0] - self.starts[0]) // max(self.n_fields, 1) + 1) * 3
        return c * width + 16, m * width + 16

    def fields(self, rows: np.ndarray, cols: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Fields `cols` of the given rows, each row's field count checked first.

        Returns values (len(rows), len(cols)) float64 (NaN rows where the count is wrong) and
        status (len(rows),) int8: 0 complete, -1 fewer fields than the header, +1 more."""
        rows = np.asarray(rows, dtype=np.int64)
        k, want = len(cols), self.n_fields - 1
        status = np.zeros(rows.size, dtype=np.int8)
        if rows.size == 0:
            return np.zeros((0, k)), status
        c, m, pos = _plan(cols, self.n_fields)
        d = self.data
        if self.mean_line > 1024:  # numpy counts a long line's commas ~3x faster than bytes.count
            buf, nonzero = np.frombuffer(d, dtype=np.uint8), np.count_nonzero
            count = lambda s, e: nonzero(buf[s:e] == 44)  # noqa: E731  (44 is ",")
        else:
            count = lambda s, e: d.count(b",", s, e)  # noqa: E731  (bytes and bytearray)
        hw, tw = self._windows(c, m)
        cells: list = []
        put = cells.extend
        blank = [b""] * (c + m)
        for i, (s, e) in enumerate(zip(self.starts[rows].tolist(), self.ends[rows].tolist())):
            commas = count(s, e)
            if commas != want:
                status[i] = -1 if commas < want else 1
                put(blank)
                continue
            if c == self.n_fields:
                put(d[s:e].split(b","))
                continue
            if c:
                head = d[s:s + hw].split(b",", c)  # the line has all its fields: a short split
                if len(head) <= c:                 # means wide fields, not a short line
                    head = d[s:e].split(b",", c)
                put(head[:c])
            if m:
                tail = d[e - tw:e].rsplit(b",", m) if e - tw > s else d[s:e].rsplit(b",", m)
                if len(tail) <= m:
                    tail = d[s:e].rsplit(b",", m)
                put(tail[1:])
        return _table(cells, rows.size, c + m, pos), status
