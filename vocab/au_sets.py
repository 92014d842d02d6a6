"""Which AUs a vocabulary is built or applied on, when corpora come from tools with different AU sets.

A corpus and a vocabulary must have the same AU names in the same order (`au_subset=all`, the
default), else they are refused before any distance is computed, with both lists named. With
`au_subset=shared` the AUs they share are used, in the vocabulary's order: the centres and the frames
both lose the columns the other side lacks, and the artifacts record which AUs were used and which
were left out. (A 14-AU DAIC-WOZ corpus against a 17-AU vocabulary then uses 14 AUs: distances, and so
the `max_dist` rule, are on those 14.) The same rule builds a vocabulary on the AUs a pretraining
corpus shares with others (`cluster.py ... au_subset=shared share_with=[DIR, ...]`).
"""
from __future__ import annotations

from dataclasses import dataclass

SUBSETS = ("all", "shared")


@dataclass(frozen=True)
class AuMatch:
    names: list[str]          # the AUs used, in the reference order
    left: list[int]           # their columns on the left side (the corpus)
    right: list[int]          # their columns on the right side (the vocabulary, or another corpus)
    only_left: list[str]      # left out: in the left side only
    only_right: list[str]     # left out: in the right side only

    @property
    def identity(self) -> bool:
        return not self.only_left and not self.only_right and self.left == self.right == list(range(len(self.names)))

    def record(self) -> dict:
        return {"au_names": self.names, "left_out_of_corpus": self.only_left, "left_out_of_vocabulary": self.only_right}


def match_aus(left: list[str], right: list[str], *, subset: str, left_name: str, right_name: str,
              hint: str = "au_subset=shared") -> AuMatch:
    """The AUs to use for `left` (a corpus) against `right` (a vocabulary or corpus), in right's order.

    subset 'all': the lists must be equal, else ValueError naming both; 'shared': their intersection
    (ValueError when empty)."""
    if subset not in SUBSETS:
        raise ValueError(f"au_subset={subset!r}: expected one of {', '.join(SUBSETS)}")
    if subset == "all" and list(left) != list(right):
        order = " (the same AUs in another order)" if sorted(left) == sorted(right) else ""
        n = len(set(left) & set(right))
        fix = f"rerun with {hint} to use the {n} AUs they share" if n else "they share no AU name"
        raise ValueError(f"{left_name} has AUs {list(left)}, which differ from {right_name}'s {list(right)}{order}; {fix}")
    names = [a for a in right if a in set(left)]
    if not names:
        raise ValueError(f"{left_name} (AUs {list(left)}) and {right_name} (AUs {list(right)}) share no AU")
    return AuMatch(names=names, left=[left.index(a) for a in names], right=[right.index(a) for a in names],
                   only_left=[a for a in left if a not in set(names)], only_right=[a for a in right if a not in set(names)])
