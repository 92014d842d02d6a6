"""Expression triplets from rendered faces, labelled the way FEC's annotators judged them.

FEC shows raters three faces and asks which expression is the most different. Here the "truth" of
that judgement is the AU-intensity distance: in a triplet (i, j, k) the odd one out is the face not
in the closest pair. Six simulated annotators each see the distances with multiplicative noise
(exp(N(0, noise^2)) per pair) and vote; triplets whose majority has fewer than `min_agreement`
votes are dropped as ambiguous (FEC's raters disagree on near-neutral triplets too).

The three faces are of three different people (and, being stills, three poses and scenes), so
the only thing that makes two of them alike is the expression. The triplet type is FEC's: the
number of distinct expression classes among the three, a face's class being its expression family
(neutral, smile, brow, negative, tension, speech, other) by the generator's FACS rule on its AU
intensities (data.synth.states.family_of, with a resting level of 0).
Margins per type are in losses/au_detection.FEC_MARGINS. Written in FEC's CSV layout (data/fec.py)
with `images.npz#row` as the image URL, so the one reader serves FEC and the rendered set.
"""
from __future__ import annotations

import numpy as np

from data.fec import TRIPLET_TYPES, FECTriplets
from data.synth.states import family_of


def expression_class(aus: np.ndarray) -> np.ndarray:
    """(N, 17) intensities -> (N,) index into data.synth.states.FAMILIES."""
    rest = np.zeros(aus.shape[1])
    return np.array([family_of(a, rest) for a in aus], dtype=np.int64)


def odd_one_out(aus3: np.ndarray) -> np.ndarray:
    """(n, 3, 17) -> (n,) index of the face not in the closest pair (by AU-intensity distance)."""
    pair_d = _pair_distances(aus3)                                               # (n, 3): pair without face k
    return pair_d.argmin(1)


def _pair_distances(aus3: np.ndarray) -> np.ndarray:
    """(n, 3, 17) -> (n, 3): column k is the distance between the two faces other than k."""
    d = lambda a, b: np.sqrt(((aus3[:, a] - aus3[:, b]) ** 2).sum(-1))
    return np.stack([d(1, 2), d(0, 2), d(0, 1)], axis=1)


def make_triplets(aus: np.ndarray, person: np.ndarray, *, n: int, seed: int = 0, annotators: int = 6,
                  noise: float = 0.25, min_agreement: int = 4, image_file: str = "images.npz") -> FECTriplets:
    """Up to `n` triplets over faces (M, 17) of people (M,): three different people per triplet."""
    rng = np.random.default_rng(seed)
    people = np.unique(person)
    if len(people) < 3:
        raise ValueError(f"triplets need faces of at least 3 people, got {len(people)}")
    by_person = [np.flatnonzero(person == p) for p in people]
    who = np.stack([rng.choice(len(people), 3, replace=False) for _ in range(n)])           # (n, 3)
    idx = np.array([[rng.choice(by_person[w]) for w in row] for row in who])                # (n, 3) face rows
    pair_d = _pair_distances(aus[idx])                                                      # (n, 3)
    noisy = pair_d[:, None, :] * np.exp(rng.normal(0, noise, (n, annotators, 3)))           # (n, A, 3)
    votes = noisy.argmin(2) + 1                                                             # (n, A) labels 1..3
    counts = np.stack([(votes == k).sum(1) for k in (1, 2, 3)], 1)
    keep = counts.max(1) >= min_agreement
    classes = expression_class(aus[idx].reshape(-1, aus.shape[1])).reshape(n, 3)
    distinct = np.array([len(set(r)) for r in classes])
    idx, votes, distinct = idx[keep], votes[keep], distinct[keep]
    return FECTriplets(urls=[tuple(f"{image_file}#{i}" for i in row) for row in idx],
                       boxes=np.tile(np.array([0.0, 1.0, 0.0, 1.0]), (len(idx), 3, 1)),
                       types=[TRIPLET_TYPES[d - 1] for d in distinct],
                       annotators=[[f"rater{a}" for a in range(annotators)] for _ in range(len(idx))],
                       labels=votes.astype(np.int64), path="rendered")


def image_rows(triplets: FECTriplets) -> np.ndarray:
    """(n, 3) face rows of triplets written by make_triplets (URLs `file#row`)."""
    try:
        return np.array([[int(u.rsplit("#", 1)[1]) for u in row] for row in triplets.urls], dtype=np.int64)
    except (IndexError, ValueError):
        raise ValueError(f"{triplets.path}: image URLs are not `file#row` (rendered triplets); "
                         "FEC's own images must be downloaded and cropped first") from None
