import numpy as np
import pytest
import torch

from data.openface.corpus import FrameCorpus


def _corpus(n=7, offsets=(0, 3, 7), sequence_video=(0, 1)):
    return FrameCorpus(frames=torch.rand(n, 17), timestamps=torch.arange(n, dtype=torch.float64) / 5,
                       gap_before=torch.zeros(n, dtype=torch.bool), offsets=torch.tensor(offsets),
                       sequence_video=torch.tensor(sequence_video), video_ids=["s1/a", "s2/b"],
                       meta={"au_names": [f"AU{i:02d}" for i in range(17)], "fingerprint": "x"})


def test_save_load_round_trip(tmp_path):
    corpus = _corpus()
    corpus.save(tmp_path / "c")
    back = FrameCorpus.load(tmp_path / "c")
    for name in ("frames", "timestamps", "gap_before", "offsets", "sequence_video"):
        assert torch.equal(getattr(back, name), getattr(corpus, name)), name
    assert back.video_ids == corpus.video_ids and back.sequence_ids == ["s1/a", "s2/b"]
    assert back.frames.dtype == torch.float32 and back.offsets.dtype == torch.int64


def test_missing_or_unfinished_corpus_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FrameCorpus.load(tmp_path / "nope")
    _corpus().save(tmp_path / "c")
    (tmp_path / "c" / "meta.json").unlink()  # interrupted before the last file
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        FrameCorpus.load(tmp_path / "c")


@pytest.mark.parametrize("offsets,sequence_video,message", [
    ((0, 3, 6), (0, 1), "offsets must run"),
    ((0, 5, 3, 7), (0, 1, 1), "offsets decrease"),
    ((0, 3, 7), (0, 2), "outside videos.txt"),
])
def test_inconsistent_corpus_is_refused(tmp_path, offsets, sequence_video, message):
    _corpus(offsets=offsets, sequence_video=sequence_video).save(tmp_path / "c")
    with pytest.raises(ValueError, match=message):
        FrameCorpus.load(tmp_path / "c")
