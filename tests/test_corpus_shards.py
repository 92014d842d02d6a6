"""FrameCorpus.load(..., sequences=range): the shards of a corpus put back together are the corpus."""
import pytest
import torch

from data.openface.corpus import FrameCorpus
from utils.distributed import Dist, shard_sequences


def _saved(folder):
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([4, 0, 9, 1, 6, 3])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    n = int(offsets[-1])
    corpus = FrameCorpus(frames=torch.rand(n, 17, generator=g), timestamps=torch.arange(n, dtype=torch.float64),
                         gap_before=torch.rand(n, generator=g) < 0.3, offsets=offsets,
                         sequence_video=torch.tensor([0, 1, 1, 2, 3, 3]), video_ids=["a", "b", "c", "d"],
                         meta={"au_names": [f"AU{i:02d}" for i in range(17)], "fingerprint": "whole"})
    corpus.save(folder)
    return corpus


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_put_together_are_the_corpus(tmp_path, world):
    whole = _saved(tmp_path / "c")
    offsets = FrameCorpus.read_offsets(tmp_path / "c")
    assert torch.equal(offsets, whole.offsets)
    shards = [shard_sequences(offsets, Dist(rank=r, world_size=world, device=torch.device("cpu"))) for r in range(world)]
    parts = [FrameCorpus.load(tmp_path / "c", sequences=s) for s in shards]
    for name in ("frames", "timestamps", "gap_before", "sequence_video"):
        assert torch.equal(torch.cat([getattr(p, name) for p in parts]), getattr(whole, name)), name
    rebuilt = torch.cat([p.offsets[:-1] + int(sum(q.n_frames for q in parts[:i])) for i, p in enumerate(parts)])
    assert torch.equal(torch.cat([rebuilt, whole.offsets[-1:]]), whole.offsets)
    assert [i for p in parts for i in p.sequence_ids] == whole.sequence_ids
    assert all(p.fingerprint == whole.fingerprint and int(p.offsets[0]) == 0 for p in parts)
    assert [p.first_row for p in parts] == [int(whole.offsets[p.shard.start]) for p in parts]
    assert [p.shard for p in parts] == shards


def test_an_empty_or_bad_part_and_saving_a_shard(tmp_path):
    _saved(tmp_path / "c")
    empty = FrameCorpus.load(tmp_path / "c", sequences=range(6, 6))
    assert empty.frames.shape == (0, 17) and empty.offsets.tolist() == [0] and empty.sequence_ids == []
    with pytest.raises(ValueError, match=r"c: sequences range\(2, 9\) is not a contiguous part of its 6"):
        FrameCorpus.load(tmp_path / "c", sequences=range(2, 9))
    with pytest.raises(ValueError, match="a shard of a corpus"):
        FrameCorpus.load(tmp_path / "c", sequences=range(1, 3)).save(tmp_path / "d")
    assert FrameCorpus.load(tmp_path / "c").shard is None
