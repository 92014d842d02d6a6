"""The one sequence dataloader: every downstream model and baseline reads its data through it.

A dataset item is one sequence (a video, or a piece of one with `on_gap=split`) of AU frames
(T, n_AU) float32 or token ids (T,) int64, its targets (n_targets,) float32 and its group (subject).
`pad_collate` pads a batch and returns the lengths for `pack_padded_sequence`;
`LengthBucketSampler` batches sequences of similar length so little compute goes to padding.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data.openface.corpus import FrameCorpus
from data.tasks.labels import LabelTable


class SequenceDataset(Dataset):
    def __init__(self, *, values: torch.Tensor, offsets: torch.Tensor, ids: Sequence[str],
                 targets: torch.Tensor, groups: torch.Tensor, max_len: int | None = None,
                 stride: int = 1, crop: str = "last"):
        if stride < 1 or (max_len is not None and max_len < 1) or crop not in ("last", "first"):
            raise ValueError(f"bad sequence options: max_len={max_len}, stride={stride}, crop={crop!r}")
        self.values = values            # (N, D) float32 frames or (N,) int64 tokens, sequences concatenated
        self.offsets = offsets.long()   # (S+1,)
        self.ids = list(ids)            # (S,) video id of each sequence
        self.targets = targets.float()  # (S, n_targets)
        self.groups = groups.long()     # (S,) subject index
        self.max_len, self.stride, self.crop = max_len, stride, crop
        full = (self.offsets[1:] - self.offsets[:-1])
        if bool((full == 0).any()):
            raise ValueError(f"empty sequence(s): {[self.ids[i] for i in torch.nonzero(full == 0)[:3, 0].tolist()]}")
        kept = full if max_len is None else full.clamp(max=max_len * stride)
        self.lengths = (kept + stride - 1) // stride  # (S,) length of each item after crop + stride

    def __len__(self) -> int:
        return len(self.ids)

    def sequence(self, i: int) -> torch.Tensor:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        if self.max_len is not None:
            span = self.max_len * self.stride
            # crop before striding, as the released code (last 6L tokens, then every 6th)
            a, b = (max(a, b - span), b) if self.crop == "last" else (a, min(b, a + span))
        return self.values[a:b:self.stride]

    def __getitem__(self, i: int) -> dict:
        return {"x": self.sequence(i), "y": self.targets[i], "group": self.groups[i], "index": i}

    @property
    def is_tokens(self) -> bool:
        return self.values.dtype == torch.int64

    @classmethod
    def from_corpus(cls, corpus: FrameCorpus, labels: LabelTable, target_names: list[str], **options):
        """AU frames of every sequence in the corpus, labelled by its video."""
        return cls._labelled(corpus.frames.float().cpu(), corpus.offsets.cpu(), corpus.sequence_ids,
                             labels, target_names, **options)

    @classmethod
    def from_tokens(cls, tokens: dict, labels: LabelTable, target_names: list[str], **options):
        """Token ids (with <start>/<end>) of every sequence in a tokens.pt dict."""
        return cls._labelled(tokens["tokens"].long().cpu(), tokens["offsets"].cpu(), tokens["video_ids"],
                             labels, target_names, **options)

    @classmethod
    def _labelled(cls, values, offsets, ids, labels: LabelTable, target_names, **options):
        """Sequences of labelled videos; those of videos absent from labels.csv are left out (and said so)."""
        ids = list(ids)
        keep = torch.tensor([v in labels.row_of for v in ids], dtype=torch.bool)
        if not bool(keep.any()):
            raise KeyError(f"{labels.path}: none of the {len(ids)} sequences has a label "
                           f"(sequence ids look like {ids[:2]}, labels.csv's like {labels.video_ids[:2]})")
        if not bool(keep.all()):
            missing = sorted({v for v, k in zip(ids, keep.tolist()) if not k})
            print(f"{labels.path}: {len(missing)} video(s) without a label left out, e.g. {missing[:3]}")
            lengths = offsets[1:] - offsets[:-1]                                     # (S,)
            values = values[torch.repeat_interleave(keep, lengths)]                  # rows of kept sequences
            offsets = torch.cat([offsets.new_zeros(1), torch.cumsum(lengths[keep], 0)])
            ids = [v for v, k in zip(ids, keep.tolist()) if k]
        rows = labels.rows_for(ids)
        targets = torch.from_numpy(labels.matrix(list(target_names))[rows]).float()
        subjects = [labels.subjects[r] for r in rows]
        index = {s: i for i, s in enumerate(sorted(set(subjects)))}
        groups = torch.tensor([index[s] for s in subjects], dtype=torch.long)
        return cls(values=values, offsets=offsets, ids=ids, targets=targets, groups=groups, **options)


def pad_collate(batch: list[dict]) -> dict:
    """Pad to the longest sequence of the batch; `lengths` (B,) int64 on the CPU, moved with x."""
    lengths = torch.tensor([len(item["x"]) for item in batch], dtype=torch.long)
    x = torch.nn.utils.rnn.pad_sequence([item["x"] for item in batch], batch_first=True)  # (B, T, ...) 
    return {"x": x, "lengths": lengths,
            "y": torch.stack([item["y"] for item in batch]),           # (B, n_targets)
            "group": torch.stack([item["group"] for item in batch]),   # (B,)
            "index": torch.tensor([item["index"] for item in batch])}  # (B,) position in the dataset


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar length: shuffle, cut into pools of `pool` batches, sort each pool by length.

    Deterministic for (seed, epoch); call `set_epoch` each epoch to get a new order.
    """

    def __init__(self, lengths: torch.Tensor, *, batch_size: int, shuffle: bool = True,
                 seed: int = 0, pool: int = 50, drop_last: bool = False):
        self.lengths = torch.as_tensor(lengths)
        self.batch_size, self.shuffle, self.seed, self.pool, self.drop_last = batch_size, shuffle, seed, pool, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        lengths = self.lengths.numpy()
        span = self.batch_size * self.pool
        batches = []
        for start in range(0, n, span):
            pool = order[start:start + span]
            pool = pool[np.argsort(lengths[pool], kind="stable")]
            batches += [pool[i:i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return iter(batches)


def make_loader(dataset: Dataset, indices: Sequence[int] | None = None, *, batch_size: int = 8,
                shuffle: bool = False, seed: int = 0, bucket: bool = True, pin: bool = False) -> DataLoader:
    """A loader over `indices` of `dataset` (all when None), bucketed by length when `bucket`;
    `pin`: batches in pinned host memory, so that copying them to a GPU does not wait."""
    subset = dataset if indices is None else torch.utils.data.Subset(dataset, list(indices))
    lengths = dataset.lengths if indices is None else dataset.lengths[torch.as_tensor(list(indices), dtype=torch.long)]
    if bucket:
        sampler = LengthBucketSampler(lengths, batch_size=batch_size, shuffle=shuffle, seed=seed)
        return DataLoader(subset, batch_sampler=sampler, collate_fn=pad_collate, pin_memory=pin)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(subset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=pad_collate,
                      pin_memory=pin)
