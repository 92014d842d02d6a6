"""Reading one OpenFace 2.x FeatureExtraction CSV: raw rows, filtering, resampling to a target rate.

    raw = read_raw(path)                  # every data row, before filtering (RawVideo)
    frames, timestamps, gap_before, report = load_video(path, ReaderConfig())

`load_video` is what ingestion runs per file: it keeps rows with `confidence >= min_confidence`
and `success == 1`, puts them on a `fps` grid (data/resample.py) and reports, per file, rows read,
kept and dropped by reason. Every choice is a `ReaderConfig` field (configs/ingest.yaml).

Layouts read: OpenFace 2.0 (`", "` separators, so names carry leading spaces), 2.2 (no spaces),
with or without `face_id`, CRLF, no final newline, any extra column groups (columns are found by
name), a cut-off last row, `frame` constant, timestamps that do not match the frame rate, NaN or
`-nan(ind)` values and negative intensities.

Speed: a full FeatureExtraction row has 714 fields of which ~20 are needed, at the two ends of
the line, so rows are never tokenised in full: splitting a small window at the start of a line
reaches frame/face_id/timestamp/confidence/success, splitting one at its end reaches the AUs.
Frame numbers and timestamps are read for every row, the other fields only for the rows the grid
takes (1 in 6 at 30 fps). A row's field count is checked (its commas counted) whenever its AU
values are used, and the last line's always; a cut-off row elsewhere is dropped unread as
off-grid (see `load_video`). Files are read into a reused per-thread buffer.

Time (`time_source=auto`): the `timestamp` column if its values are finite, non-decreasing and
their typical step implies a rate in [min_source_fps, max_source_fps]; otherwise frame numbers
at `source_fps` (e.g. pyfeat's OpenFace_Test.csv steps 0.001 s per frame: 1000 fps, so its frames
are used); otherwise the file is an error. The report says which was used and why.

Other tools: `PRESETS["pyfeat"]` (CLI: `config=configs/ingest_pyfeat.yaml`) reads py-feat
Detector output: AU columns without suffix (20 AUs, AU43 instead of AU45), `FaceScore` as the
confidence, no timestamp (frame numbers at `source_fps`). py-feat AU values are detection
probabilities in [0, 1], not OpenFace's 0-5 intensities: do not mix the two in one corpus.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from data.resample import drop_short_sequences, gap_before as grid_gap_before, grid_rows
from utils.config import ConfigError

# The 17 intensities of METHOD.md section 1, in order.
DEFAULT_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
               "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")
# py-feat Detector AUs (probabilities, not intensities).
PYFEAT_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12",
              "AU14", "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43")

# Bump when parsing or filtering semantics change: cached ingestion parts then become stale.
READER_VERSION = 1

# Why a row is not in the output; every row read gets exactly one reason or is kept.
DROP_REASONS = ("truncated", "malformed", "other_face", "off_grid", "failed", "low_confidence",
                "nan", "negative", "short_sequence")
_CODE = {r: i for i, r in enumerate(DROP_REASONS)}
_KEPT = len(DROP_REASONS)


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
        rc = ReaderConfig(**{**values, "au_names": [str(a) for a in values["au_names"]]})
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
              ("min_sequence_frames", rc.min_sequence_frames >= 1, "at least 1")]
    for key, ok, what in checks:
        if not ok:
            raise ConfigError(f"{key}={getattr(rc, key)!r}: expected {what}")
    return rc


def reader_hash(cfg: ReaderConfig) -> str:
    """Identifies everything that decides a file's output: the reader config and READER_VERSION."""
    blob = json.dumps({"version": READER_VERSION, **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class MissingColumnsError(ValueError):
    def __init__(self, path: str, missing: list[str], hint: str = ""):
        self.path, self.missing = path, missing
        super().__init__(f"{path}: missing column(s) {', '.join(missing)}{hint}")


# --- the CSV text ---------------------------------------------------------------------------------

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


def _columns(text: CsvText, cfg: ReaderConfig) -> dict[str, Optional[int]]:
    """Column index of each role; required ones missing raise MissingColumnsError."""
    roles = {"frame": cfg.frame_column, "timestamp": cfg.timestamp_column,
             "confidence": cfg.confidence_column, "success": cfg.success_column}
    au_cols = [cfg.au_column.format(au=a) for a in cfg.au_names]
    wanted = [c for c in roles.values() if c is not None] + au_cols
    idx = text.require(wanted)
    out = {role: (None if name is None else text.index(name)) for role, name in roles.items()}
    out["face_id"] = text.index(cfg.face_id_column) if cfg.face_id is not None else None
    out["aus"] = idx[len(wanted) - len(au_cols):]
    return out


# --- raw rows -------------------------------------------------------------------------------------

@dataclass
class RawVideo:
    """Every complete data row of one file, before any filtering.

    Row numbers (`line`, `truncated_rows`, `malformed_rows`) are 1-based line numbers in the file:
    the header is line 1. Rows whose field count differs from the header's are not in the arrays.
    """
    path: str
    columns: list[str]              # header names, stripped
    au_names: list[str]
    line: np.ndarray                # (n,) int64
    frame: np.ndarray               # (n,) int64 (the row index without a frame column)
    timestamp: Optional[np.ndarray]  # (n,) float64; None without a timestamp column
    confidence: np.ndarray          # (n,) float32 (1 without a confidence column; NaN unparseable)
    success: np.ndarray             # (n,) int8 (1 without a success column)
    face_id: Optional[np.ndarray]   # (n,) int64 or None
    aus: np.ndarray                 # (n, n_AU) float32, NaN where unparseable (`-nan(ind)`)
    truncated_rows: list[int]       # cut off: fewer fields than the header
    malformed_rows: list[int]       # more fields than the header

    @property
    def n_rows(self) -> int:
        return int(self.line.size)


def _frame_numbers(values: np.ndarray, text: CsvText, rows: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{text.path}: line {int(text.line_no[rows[i]])}: frame is not an integer")
    return values.astype(np.int64)


def read_raw(path: str | Path, *, au_names: Sequence[str] = DEFAULT_AUS, au_column: str = "{au}_r",
             frame_column: Optional[str] = "frame", timestamp_column: Optional[str] = "timestamp",
             confidence_column: Optional[str] = "confidence", success_column: Optional[str] = "success",
             face_id_column: Optional[str] = "face_id") -> RawVideo:
    """Every data row of the file, every field count checked. Missing columns: MissingColumnsError
    (a ValueError) naming the file and the columns. A 0-byte file gives no columns and no rows."""
    cfg = ReaderConfig(au_names=list(au_names), au_column=au_column, frame_column=frame_column,
                       timestamp_column=timestamp_column, confidence_column=confidence_column,
                       success_column=success_column, face_id_column=face_id_column)
    text = CsvText.read(path, reuse_buffer=True)
    n_au = len(cfg.au_names)
    if not text.columns:
        z = np.zeros(0)
        return RawVideo(str(path), [], list(au_names), z.astype(np.int64), z.astype(np.int64),
                        z if timestamp_column else None, z.astype(np.float32), z.astype(np.int8),
                        None, np.zeros((0, n_au), np.float32), [], [])
    col = _columns(text, cfg)
    roles = [r for r in ("frame", "timestamp", "confidence", "success", "face_id") if col[r] is not None]
    all_rows = np.arange(text.n_rows)
    values, status = text.fields(all_rows, [col[r] for r in roles] + col["aus"])
    rows = all_rows[status == 0]
    values = values[status == 0]
    get = {r: values[:, i] for i, r in enumerate(roles)}
    n = rows.size
    frame = _frame_numbers(get["frame"], text, rows) if "frame" in get else np.arange(n, dtype=np.int64)
    face = _frame_numbers(get["face_id"], text, rows) if "face_id" in get else None
    return RawVideo(
        path=str(path), columns=text.columns, au_names=list(au_names), line=text.line_no[rows],
        frame=frame, timestamp=get.get("timestamp"),
        confidence=get["confidence"].astype(np.float32) if "confidence" in get else np.ones(n, np.float32),
        success=(get["success"] == 1).astype(np.int8) if "success" in get else np.ones(n, np.int8),
        face_id=face, aus=values[:, len(roles):].astype(np.float32),
        truncated_rows=text.line_no[all_rows[status < 0]].tolist(),
        malformed_rows=text.line_no[all_rows[status > 0]].tolist())


# --- time -----------------------------------------------------------------------------------------

def _timestamp_problem(ts: Optional[np.ndarray], line: np.ndarray, cfg: ReaderConfig,
                       check_rate: bool) -> Optional[str]:
    if ts is None:
        return "no timestamp column"
    if not np.all(np.isfinite(ts)):
        return f"timestamp is not a number on line {int(line[~np.isfinite(ts)][0])}"
    step = np.diff(ts)
    if np.any(step < 0):
        return f"timestamp decreases on line {int(line[1:][step < 0][0])}"
    if ts.size > 1:
        if not np.any(step > 0):
            return "timestamp is constant"
        if not check_rate:
            return None
        typical = float(np.median(step[step > 0]))
        rate = 1.0 / typical
        if not cfg.min_source_fps <= rate <= cfg.max_source_fps:
            return (f"timestamp steps of {typical:g} s imply {rate:g} fps, outside "
                    f"[{cfg.min_source_fps:g}, {cfg.max_source_fps:g}] (min_source_fps, max_source_fps)")
    return None


def _frame_problem(frame: Optional[np.ndarray], line: np.ndarray) -> Optional[str]:
    if frame is None:
        return "no frame column"
    if not np.all(np.isfinite(frame)):
        return f"frame is not a number on line {int(line[~np.isfinite(frame)][0])}"
    step = np.diff(frame)
    if frame.size > 1 and not np.any(step != 0):
        return "frame is constant"
    if np.any(step <= 0):
        return f"frame does not increase on line {int(line[1:][step <= 0][0])}"
    return None


def resolve_time(frame: Optional[np.ndarray], timestamp: Optional[np.ndarray], line: np.ndarray,
                 cfg: ReaderConfig, path: str = "") -> tuple[np.ndarray, str, str]:
    """Seconds (n,) float64 for each row, the source used ('timestamp' | 'frame') and a note.

    Timestamps are used as written; frame-based times are (frame - first frame) / source_fps."""
    ts_problem = _timestamp_problem(timestamp, line, cfg, check_rate=cfg.time_source == "auto")
    fr_problem = _frame_problem(frame, line)
    use_ts = cfg.time_source == "timestamp" or (cfg.time_source == "auto" and ts_problem is None)
    if use_ts and ts_problem is None:
        note = f"{fr_problem} (not needed)" if fr_problem and frame is not None else ""
        return timestamp, "timestamp", note
    if not use_ts and fr_problem is None:
        note = "" if cfg.time_source == "frame" else f"{ts_problem}: using frame / source_fps ({cfg.source_fps:g})"
        return (frame - frame[0]) / cfg.source_fps, "frame", note
    problems = {"timestamp": ts_problem, "frame": fr_problem}
    tried = ["timestamp", "frame"] if cfg.time_source == "auto" else [cfg.time_source]
    why = "; ".join(problems[s] for s in tried if problems[s])
    raise ValueError(f"{path}: no usable time (time_source={cfg.time_source}): {why}")


# --- one video ------------------------------------------------------------------------------------

class VideoFrames(NamedTuple):
    frames: np.ndarray       # (n, n_AU) float32
    timestamps: np.ndarray   # (n,) float64 seconds
    gap_before: np.ndarray   # (n,) bool: missing grid points between the previous frame and this one
    report: dict


def new_report(path: str) -> dict:
    return {"file": path, "rows_read": 0, "kept": 0, "dropped": {r: 0 for r in DROP_REASONS},
            "negative_values": 0, "negative_policy": None, "grid_points": 0, "missing_grid_points": 0,
            "gaps": 0, "sequences": 0, "time_source": None, "source_fps": None, "time_note": "",
            "truncated_lines": [], "n_columns": 0, "empty": False, "error": None}


def _empty(n_au: int, report: dict) -> VideoFrames:
    return VideoFrames(np.zeros((0, n_au), np.float32), np.zeros(0), np.zeros(0, bool), report)


def load_video(path: str | Path, cfg: Any = None) -> VideoFrames:
    """Kept frames of one file on the target grid, with the per-file report.

    Rows are dropped in this order, each with one reason: a cut-off (`truncated`) or overlong
    (`malformed`) line, another face (`other_face`), not taken by the grid (`off_grid`), then for
    the grid's rows `failed` (success != 1), `low_confidence`, `nan` (any AU not a number),
    `negative` (with negative=drop) and, with on_gap=split, `short_sequence`. So `rows_read` equals
    `kept` plus the sum of `dropped`. A cut-off line that the grid skips anyway is counted as
    `off_grid` (it is not read), except the last line, which is always checked.

    Raises ValueError (naming the file) for missing columns or no usable time.
    """
    cfg = as_reader_config(cfg)
    report = new_report(str(path))
    report["negative_policy"] = cfg.negative
    n_au = len(cfg.au_names)
    text = CsvText.read(path, reuse_buffer=True)  # dropped before returning
    report["n_columns"] = text.n_fields
    if not text.columns:
        report["empty"] = True
        return _empty(n_au, report)
    col = _columns(text, cfg)
    n = text.n_rows
    report["rows_read"] = n
    if n == 0:
        report["empty"] = True
        return _empty(n_au, report)

    reason = np.full(n, -1, dtype=np.int8)  # -1 undecided, else _CODE / _KEPT

    def mark(rows, status):
        reason[rows[status < 0]] = _CODE["truncated"]
        reason[rows[status > 0]] = _CODE["malformed"]

    last = np.array([n - 1])
    mark(last, text.fields(last, [0])[1])  # a writer killed mid-row leaves the last line cut off
    scan_roles = [r for r in ("frame", "timestamp", "face_id") if col[r] is not None]
    scanned, short = text.scan([col[r] for r in scan_roles])
    reason[short & (reason < 0)] = _CODE["truncated"]
    got = {r: scanned[:, i] for i, r in enumerate(scan_roles)}
    if "face_id" in got:
        reason[(got["face_id"] != cfg.face_id) & (reason < 0)] = _CODE["other_face"]
    timeline = np.flatnonzero(reason != _CODE["other_face"])  # this face's rows, cut-off ones too
    alive = np.flatnonzero(reason < 0)
    if alive.size == 0:
        return _finish(reason, np.zeros(0, bool), np.zeros((0, n_au), np.float32), np.zeros(0), text, cfg, report)

    frame = got["frame"][alive] if "frame" in got else alive.astype(np.float64)
    t, report["time_source"], report["time_note"] = resolve_time(
        frame, got["timestamp"][alive] if "timestamp" in got else None, text.line_no[alive], cfg, str(path))
    if t.size > 1 and t[-1] > t[0]:  # mean rate over the file: exact for regular ms-rounded times
        report["source_fps"] = round((t.size - 1) / float(t[-1] - t[0]), 3)
    if cfg.fps is not None:
        pick = grid_rows(t, cfg.fps)                           # (K,) index into alive, -1 none
        point_row = np.where(pick >= 0, alive[np.maximum(pick, 0)], -1)
        point_time = np.where(pick >= 0, t[np.maximum(pick, 0)], np.nan)
        taken = np.zeros(n, dtype=bool)
        taken[point_row[point_row >= 0]] = True
        reason[(reason < 0) & ~taken] = _CODE["off_grid"]
    else:  # every row of the face is a point; cut-off rows are missing points
        point_row = np.where(reason[timeline] < 0, timeline, -1)
        time_of = np.full(n, np.nan)
        time_of[alive] = t
        point_time = time_of[timeline]
    rows = point_row[point_row >= 0]                           # (P,) grid order, distinct

    # The grid's rows: AU fields with each line's field count checked, confidence and success.
    aus, status = text.fields(rows, col["aus"])
    mark(rows, status)
    role_cols = [c for c in (col["confidence"], col["success"]) if c is not None]
    roles = text.scan(role_cols, rows)[0]
    conf = roles[:, 0] if col["confidence"] is not None else np.ones(rows.size)
    success = roles[:, -1] if col["success"] is not None else np.ones(rows.size)
    fresh = reason[rows] < 0
    checks = [("failed", (success != 1) if cfg.require_success else np.zeros(rows.size, bool)),
              ("low_confidence", ~(conf >= cfg.min_confidence)),
              ("nan", ~np.all(np.isfinite(aus), axis=1)),
              ("negative", np.any(aus < 0, axis=1) if cfg.negative == "drop" else np.zeros(rows.size, bool))]
    for name, bad in checks:
        hit = fresh & bad
        reason[rows[hit]] = _CODE[name]
        fresh &= ~hit
    reason[rows[fresh]] = _KEPT

    ok = np.zeros(point_row.size, dtype=bool)
    ok[point_row >= 0] = reason[rows] == _KEPT                 # per grid point: has a kept row
    report["grid_points"] = int(point_row.size)
    report["missing_grid_points"] = int(point_row.size - ok.sum())
    frames = aus[fresh].astype(np.float32)                     # (n_kept, n_AU), grid order
    return _finish(reason, ok, frames, point_time[ok], text, cfg, report)


def _finish(reason, ok, frames, times, text: CsvText, cfg: ReaderConfig, report: dict) -> VideoFrames:
    gap = grid_gap_before(ok)
    if cfg.on_gap == "split" and cfg.min_sequence_frames > 1 and gap.size:
        keep = drop_short_sequences(gap, cfg.min_sequence_frames)
        kept_rows = np.flatnonzero(reason == _KEPT)  # row order is grid order
        reason[kept_rows[~keep]] = _CODE["short_sequence"]
        frames, times, gap = frames[keep], times[keep], gap[keep]
        if gap.size:
            gap[0] = False
    negative = frames < 0
    report["negative_values"] = int(negative.sum())
    if cfg.negative == "clip":
        frames[negative] = 0.0
    counts = np.bincount(reason[reason >= 0], minlength=_KEPT + 1)
    report["kept"] = int(counts[_KEPT])
    report["dropped"] = {r: int(counts[_CODE[r]]) for r in DROP_REASONS}
    report["truncated_lines"] = text.line_no[reason == _CODE["truncated"]].tolist()
    report["gaps"] = int(gap.sum())
    report["sequences"] = (int(gap.sum()) + 1 if cfg.on_gap == "split" else 1) if gap.size else 0
    return VideoFrames(frames, np.asarray(times, dtype=np.float64), gap, report)
