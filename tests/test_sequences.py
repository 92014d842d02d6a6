import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from data.openface.corpus import FrameCorpus
from data.tasks.labels import read_labels
from data.tasks.sequences import LengthBucketSampler, SequenceDataset, make_loader, pad_collate


def _dataset(lengths, **options):
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.long)
    values = torch.arange(int(offsets[-1]) * 2, dtype=torch.float32).reshape(-1, 2)
    n = len(lengths)
    return SequenceDataset(values=values, offsets=offsets, ids=[f"v{i}" for i in range(n)],
                           targets=torch.arange(n, dtype=torch.float32)[:, None],
                           groups=torch.arange(n) // 2, **options)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=8),
       max_len=st.one_of(st.none(), st.integers(1, 12)), stride=st.integers(1, 6),
       crop=st.sampled_from(["last", "first"]))
def test_crop_and_stride_match_plain_slicing(lengths, max_len, stride, crop):
    ds = _dataset(lengths, max_len=max_len, stride=stride, crop=crop)
    start = 0
    for i, n in enumerate(lengths):
        rows = list(range(start, start + n))
        if max_len is not None:  # released code: keep the last max_len*stride rows, then every stride-th
            rows = rows[-max_len * stride:] if crop == "last" else rows[:max_len * stride]
        rows = rows[::stride]
        expected = torch.tensor([[2.0 * r, 2.0 * r + 1] for r in rows])
        assert torch.equal(ds.sequence(i), expected)
        assert int(ds.lengths[i]) == len(rows)
        start += n


def test_collate_pads_and_keeps_lengths():
    ds = _dataset([3, 1, 2])
    batch = pad_collate([ds[0], ds[1], ds[2]])
    assert batch["x"].shape == (3, 3, 2) and batch["lengths"].tolist() == [3, 1, 2]
    assert torch.equal(batch["x"][1, 1:], torch.zeros(2, 2))
    assert batch["y"].shape == (3, 1) and batch["index"].tolist() == [0, 1, 2]
    assert batch["group"].tolist() == [0, 0, 1]


def test_bucket_sampler_covers_every_item_once_and_is_seeded():
    lengths = torch.randint(1, 100, (103,), generator=torch.Generator().manual_seed(0))
    sampler = LengthBucketSampler(lengths, batch_size=8, seed=3, pool=4)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(103)) and len(batches) == len(sampler)
    assert batches == list(LengthBucketSampler(lengths, batch_size=8, seed=3, pool=4))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    # within a pool, batches are sorted by length: the spread inside a batch is smaller than at random
    spread = np.mean([float(lengths[b].max() - lengths[b].min()) for b in batches if len(b) > 1])
    assert spread < 40


def test_loader_over_subset_yields_those_items():
    ds = _dataset([5, 4, 3, 2, 1])
    seen = [i for batch in make_loader(ds, [4, 1, 2], batch_size=2, shuffle=True) for i in batch["index"].tolist()]
    # `index` is the position in the whole dataset, so predictions map back to their videos
    assert sorted(seen) == [1, 2, 4]


def test_empty_sequence_is_an_error():
    with pytest.raises(ValueError, match="v1"):
        _dataset([2, 0, 1])


def _write_labels(path, text):
    path.write_text(text)
    return read_labels(path)


def test_from_corpus_labels_each_sequence_by_its_video(tmp_path):
    frames = torch.rand(6, 17)
    corpus = FrameCorpus(frames=frames, timestamps=torch.zeros(6, dtype=torch.float64),
                         gap_before=torch.zeros(6, dtype=torch.bool), offsets=torch.tensor([0, 2, 3, 6]),
                         sequence_video=torch.tensor([0, 1, 1]), video_ids=["a/x", "b/y"],
                         meta={"au_names": [f"AU{i}" for i in range(17)]})
    labels = _write_labels(tmp_path / "labels.csv", "video_id,subject,split,score\nb/y,s2,train,3\na/x,s1,test,7\n")
    ds = SequenceDataset.from_corpus(corpus, labels, ["score"])
    assert ds.targets[:, 0].tolist() == [7.0, 3.0, 3.0]
    assert ds.groups.tolist() == [0, 1, 1]
    assert torch.equal(ds[2]["x"], frames[3:6])


def test_labels_errors_name_the_line_and_column(tmp_path):
    with pytest.raises(ValueError, match=r"line 3, column score"):
        _write_labels(tmp_path / "l.csv", "video_id,subject,score\na,s,1\nb,s,high\n")
    with pytest.raises(ValueError, match="missing column"):
        _write_labels(tmp_path / "m.csv", "video,subject,score\na,s,1\n")
    labels = _write_labels(tmp_path / "ok.csv", "video_id,subject,score\na,s,1\n")
    with pytest.raises(KeyError, match="no label"):
        labels.rows_for(["a", "zz"])
    with pytest.raises(KeyError, match="unknown target"):
        labels.matrix(["phq8"])


def test_unlabelled_videos_are_left_out_and_all_unlabelled_is_an_error(tmp_path):
    frames = torch.arange(12, dtype=torch.float32).reshape(6, 2).repeat(1, 1)
    corpus = FrameCorpus(frames=torch.cat([frames, torch.zeros(6, 15)], 1),
                         timestamps=torch.zeros(6, dtype=torch.float64), gap_before=torch.zeros(6, dtype=torch.bool),
                         offsets=torch.tensor([0, 2, 3, 6]), sequence_video=torch.tensor([0, 1, 2]),
                         video_ids=["a", "extra", "c"], meta={"au_names": [f"AU{i}" for i in range(17)]})
    labels = _write_labels(tmp_path / "labels.csv", "video_id,subject,score\nc,s2,3\na,s1,7\n")
    ds = SequenceDataset.from_corpus(corpus, labels, ["score"])
    assert ds.ids == ["a", "c"] and ds.targets[:, 0].tolist() == [7.0, 3.0]
    assert torch.equal(ds.sequence(0), corpus.frames[0:2]) and torch.equal(ds.sequence(1), corpus.frames[3:6])
    none = _write_labels(tmp_path / "none.csv", "video_id,subject,score\nzz,s,1\n")
    with pytest.raises(KeyError, match="none of the 3 sequences"):
        SequenceDataset.from_corpus(corpus, none, ["score"])
