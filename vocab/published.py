"""The paper authors' published vocabulary (repository mtran14/AUglove, folder `data/`) as a Vocabulary.

    vocab, report = read_published_vocabulary(folder)            # cluster.py import=DIR out=VOCAB
    index = read_token_index(folder, k)                           # published token name -> published id

Files (no headers): `cluster_centers_action_units_<k>.csv` (k rows of the 17 AU intensities, METHOD.md
order), `cluster_counter_<k>.csv` (`cluster,count`: frames of each cluster in their 5.3M-frame corpus),
`word2ind_<k>*.csv` (`token,id`: `<END>`, `<START>`, `<unk>`, then `c<cluster>`; the highest `_v<N>`
is read when there are several, and the report names it).

They are not consistent with each other, and every inconsistency meets one rule, counted in the report:
- a centre with a NaN value is kept as published and never assigned (vocab.tokens.nearest skips it);
- a cluster without a row in the counter has count 0, so it is <unk>;
- <unk> follows the released code: a cluster is <unk> when its count is at most 500 (`min_count` = 501
  here; its AVEC notebooks used 150) or a frame lies farther than 1.75 from its centre;
- a cluster absent from the token index is <unk> too: the released code only indexed clusters with
  more than 500 frames, so the count rule already covers such a cluster; one that the rule does not
  cover is `excluded` from the vocabulary (always <unk>) and counted apart;
- a token name that is neither a special nor `c<cluster>` of a cluster that exists, a repeated name
  or a repeated id is an error: no rule can say what it means.
Our token ids are not the published ids (ours: 0 <unk>, 1 <start>, 2 <end>, c -> c + 3); the index maps
published ids to our names (`published_names`), which is how published vectors find their tokens.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import torch

from data.openface.reader_config import DEFAULT_AUS
from vocab.tokens import Vocabulary

# published special names -> ours
SPECIAL_NAMES = {"<END>": "<end>", "<START>": "<start>", "<unk>": "<unk>"}
RELEASED_UNK_COUNT = 500        # released code: a cluster with at most this many frames is <unk>
RELEASED_MAX_DIST = 1.75


def _rows(path: Path, width: int) -> list[list[str]]:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    for line, row in enumerate(rows, 1):
        if len(row) != width:
            raise ValueError(f"{path}, line {line}: {len(row)} fields, expected {width}")
    return rows


def _int(path: Path, line: int, text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{path}, line {line}: {what} {text!r} is not an integer") from None


def find_k(folder: Path, k: int = 0) -> int:
    """The k of the published centres in `folder` (the only one, or the one asked for)."""
    found = sorted(int(m.group(1)) for p in folder.glob("cluster_centers_action_units_*.csv")
                   if (m := re.fullmatch(r"cluster_centers_action_units_(\d+)\.csv", p.name)))
    if k:
        if k not in found:
            raise FileNotFoundError(f"{folder}: no cluster_centers_action_units_{k}.csv (found k = {found or 'none'})")
        return k
    if len(found) != 1:
        raise FileNotFoundError(f"{folder}: {'no' if not found else 'several'} cluster_centers_action_units_<k>.csv "
                                f"({found}); " + ("give k=K" if found else "is this the published data/ folder?"))
    return found[0]


def index_file(folder: Path, k: int) -> tuple[Path, list[str]]:
    """The token index word2ind_<k>*.csv to read (highest _v<N>; unversioned counts as 1) and the others."""
    def version(p: Path) -> int:
        m = re.search(r"_v(\d+)$", p.stem)
        return int(m.group(1)) if m else 1
    found = sorted((p for p in folder.glob(f"word2ind_{k}*.csv") if re.fullmatch(rf"word2ind_{k}(_v\d+)?", p.stem)),
                   key=lambda p: (version(p), p.name))
    if not found:
        raise FileNotFoundError(f"{folder}: no token index word2ind_{k}*.csv")
    return found[-1], [p.name for p in found[:-1]]


def read_token_index(folder: str | Path, k: int) -> tuple[dict[str, int], Path]:
    """Published token name -> published id, checked: specials and c<cluster> with cluster < k only,
    no repeated name or id."""
    path, _ = index_file(Path(folder), k)
    index, name_line, id_line = {}, {}, {}
    for line, (name, value) in enumerate(_rows(path, 2), 1):
        name, i = name.strip(), _int(path, line, value, "id")
        m = re.fullmatch(r"c(\d+)", name)
        if name not in SPECIAL_NAMES and not (m and int(m.group(1)) < k):
            raise ValueError(f"{path}, line {line}: token {name!r} is neither {', '.join(SPECIAL_NAMES)} nor c<cluster < {k}>")
        if name in name_line or i in id_line:
            what, first = (f"token {name!r}", name_line[name]) if name in name_line else (f"id {i}", id_line[i])
            raise ValueError(f"{path}, line {line}: {what} repeats (first on line {first})")
        index[name], name_line[name], id_line[i] = i, line, line
    return index, path


def published_names(index: dict[str, int]) -> dict[int, str]:
    """Published id -> our token name (`<END>` -> `<end>`, `c12` stays `c12`)."""
    return {i: SPECIAL_NAMES.get(name, name) for name, i in index.items()}


def read_published_vocabulary(folder: str | Path, *, k: int = 0, min_count: int = RELEASED_UNK_COUNT + 1,
                              max_dist: float = RELEASED_MAX_DIST) -> tuple[Vocabulary, dict]:
    """The Vocabulary of the published files in `folder`, and the report of what was inconsistent."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"import={folder}: no such folder")
    k = find_k(folder, k)
    centres_path = folder / f"cluster_centers_action_units_{k}.csv"
    counts_path = folder / f"cluster_counter_{k}.csv"
    if not counts_path.exists():
        raise FileNotFoundError(f"{counts_path} does not exist: the counts decide <unk>")

    rows = _rows(centres_path, len(DEFAULT_AUS))
    if len(rows) != k:
        raise ValueError(f"{centres_path}: {len(rows)} rows, expected k = {k}")
    centres = np.array([[float(x) if x.strip() else np.nan for x in r] for r in rows], dtype=np.float32)  # (k, 17)
    nan_centres = np.flatnonzero(~np.isfinite(centres).all(axis=1)).tolist()

    counts = np.zeros(k, dtype=np.int64)
    seen: dict[int, int] = {}
    for line, (cluster, count) in enumerate(_rows(counts_path, 2), 1):
        c, n = _int(counts_path, line, cluster, "cluster"), _int(counts_path, line, count, "count")
        if not 0 <= c < k or c in seen or n < 0:
            why = f"cluster {c} outside 0..{k - 1}" if not 0 <= c < k else (f"cluster {c} repeats (line {seen[c]})" if c in seen
                                                                            else f"negative count {n}")
            raise ValueError(f"{counts_path}, line {line}: {why}")
        seen[c], counts[c] = line, n
    without_count = sorted(set(range(k)) - set(seen))

    index, index_path = read_token_index(folder, k)
    _, alternatives = index_file(folder, k)
    missing_specials = sorted(set(SPECIAL_NAMES) - set(index))
    if missing_specials:
        raise ValueError(f"{index_path}: special token(s) {missing_specials} missing")
    indexed = {int(name[1:]) for name in index if name not in SPECIAL_NAMES}
    absent = sorted(set(range(k)) - indexed)
    rule_covers = [c for c in absent if counts[c] < min_count]
    excluded = tuple(c for c in absent if counts[c] >= min_count)

    vocab = Vocabulary(centroids=torch.from_numpy(centres), counts=torch.from_numpy(counts), au_names=list(DEFAULT_AUS),
                       min_count=min_count, max_dist=max_dist, corpus_fingerprint="", excluded=excluded)
    unk = vocab.unk_clusters.numpy()
    never = set(nan_centres)
    report = {
        "source": str(folder), "k": k, "vocab_size": vocab.size, "au_names": list(DEFAULT_AUS),
        "files": {"centres": centres_path.name, "counts": counts_path.name, "index": index_path.name,
                  "index_not_read": alternatives},
        "unk_rule": {"min_count": min_count, "max_dist": max_dist,
                     "text": f"<unk>: a cluster with at most {min_count - 1} frames (count < {min_count}) or a frame "
                             f"farther than {max_dist:g} from its centre, as the released code"},
        "frames_counted": int(counts.sum()), "count_min": int(counts[list(seen)].min()) if seen else 0,
        "count_max": int(counts.max()),
        "nan_centres": {"count": len(nan_centres), "clusters": nan_centres,
                        "rule": "kept as published, never assigned: no frame is nearest to a NaN centre"},
        "clusters_without_count": {"count": len(without_count), "clusters": without_count,
                                   "rule": "count 0, so <unk>"},
        "clusters_absent_from_index": {"count": len(absent), "clusters": absent,
                                       "covered_by_count_rule": len(rule_covers),
                                       "excluded": list(excluded),
                                       "rule": "<unk>: the count rule covers those with count < min_count; "
                                               "any other is excluded (always <unk>)"},
        "unk_clusters": {"count": int(unk.sum()), "clusters": np.flatnonzero(unk).tolist(),
                         "frames": int(counts[unk].sum())},
        "usable_clusters": int(sum(1 for c in range(k) if not unk[c] and c not in never)),
        "index_tokens": len(index),
    }
    return vocab, report


def report_lines(report: dict) -> list[str]:
    """The report as console lines, one per inconsistency, with counts."""
    r = report
    return [
        f"read {r['files']['centres']}, {r['files']['counts']}, {r['files']['index']}"
        + (f" (not read: {', '.join(r['files']['index_not_read'])})" if r["files"]["index_not_read"] else ""),
        f"k = {r['k']} centres, {r['frames_counted']:,} frames counted (min {r['count_min']}, max {r['count_max']}); "
        f"V = {r['vocab_size']} tokens",
        f"NaN centres: {r['nan_centres']['count']} {r['nan_centres']['clusters']} -> never assigned",
        f"clusters without a count: {r['clusters_without_count']['count']} {r['clusters_without_count']['clusters']} -> count 0, <unk>",
        f"clusters absent from the token index: {r['clusters_absent_from_index']['count']} "
        f"{r['clusters_absent_from_index']['clusters']} -> <unk> ({r['clusters_absent_from_index']['covered_by_count_rule']} "
        f"by the count rule, {len(r['clusters_absent_from_index']['excluded'])} excluded)",
        f"<unk> clusters: {r['unk_clusters']['count']} ({r['unk_clusters']['frames']:,} frames); "
        f"{r['usable_clusters']} clusters can give a token; rule: {r['unk_rule']['text']}",
    ]
