"""Vocabularies across AU sets: a corpus whose AUs differ from the vocabulary's is refused before anything is
computed (both lists named); au_subset=shared applies, or builds, a vocabulary on the AUs both have."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cluster
from data.openface.reader_config import DAICWOZ_AUS, DEFAULT_AUS
from tests.planted import make_corpus, planted_frames
from utils.config import ConfigError
from vocab.au_sets import match_aus
from vocab.tokens import UNK, Tokens, Vocabulary

CPU = ["device=cpu", "sweep=[]", "min_count=20"]
SHARED = [DEFAULT_AUS.index(a) for a in DAICWOZ_AUS]   # the 14 DAIC-WOZ columns of a 17-AU frame


def _save(frames: np.ndarray, names, path, n_sequences=6):
    corpus = make_corpus(frames, n_sequences=n_sequences, seed=1)
    corpus.meta["au_names"] = list(names)
    corpus.save(path)
    return corpus


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("aus")
    frames, _ = planted_frames(n=1500, k=6, seed=0)                   # (1500, 17)
    _save(frames, DEFAULT_AUS, root / "pre")
    down, _ = planted_frames(n=120, k=6, seed=0)
    _save(down[:, SHARED], DAICWOZ_AUS, root / "daic")                 # a 14-AU corpus of the same faces
    cluster.main([f"corpus={root / 'pre'}", f"out={root / 'vocab17'}", "k=6", *CPU])
    return root


def test_a_different_au_set_is_refused_with_both_lists(corpora):
    with pytest.raises(ValueError) as err:
        cluster.main([f"corpus={corpora / 'daic'}", f"vocab={corpora / 'vocab17'}", f"out={corpora / 'refused'}", *CPU])
    message = str(err.value)
    assert str(list(DAICWOZ_AUS)) in message and str(list(DEFAULT_AUS)) in message and "au_subset=shared" in message
    assert not (corpora / "refused").exists()                           # before any work or file
    with pytest.raises(ValueError, match="another order"):
        match_aus(["AU02", "AU01"], ["AU01", "AU02"], subset="all", left_name="a", right_name="b")


def test_shared_aus_apply_a_17_au_vocabulary_to_a_14_au_corpus(corpora):
    out = corpora / "tok14"
    summary = cluster.main([f"corpus={corpora / 'daic'}", f"vocab={corpora / 'vocab17'}", f"out={out}",
                            "au_subset=shared", *CPU])
    vocab = Vocabulary.load(corpora / "vocab17")
    tokens = Tokens.load(out, vocab=vocab)
    assert tokens.au_names == list(DAICWOZ_AUS)
    assert summary["au_subset"] == {"au_names": list(DAICWOZ_AUS), "left_out_of_corpus": [],
                                    "left_out_of_vocabulary": ["AU07", "AU23", "AU45"]}
    frames = np.load(corpora / "daic" / "frames.npy").astype(np.float64)       # (120, 14)
    centres = vocab.centroids.numpy()[:, SHARED].astype(np.float64)            # (6, 14)
    d = np.sqrt(((frames[:, None] - centres[None]) ** 2).sum(-1))
    expected = np.where(d.min(1) > vocab.max_dist, UNK, d.argmin(1) + 3)
    inner = torch.ones(len(tokens.tokens), dtype=torch.bool)
    inner[tokens.offsets[:-1]], inner[tokens.offsets[1:] - 1] = False, False
    np.testing.assert_array_equal(tokens.tokens[inner].numpy(), expected)
    assert (expected != UNK).mean() > 0.9


def test_a_vocabulary_built_on_the_aus_shared_with_another_corpus(corpora):
    out = corpora / "vocab14"
    with pytest.raises(ConfigError, match="share_with"):
        cluster.main([f"corpus={corpora / 'pre'}", f"out={out}", "k=6", "au_subset=shared", *CPU])
    summary = cluster.main([f"corpus={corpora / 'pre'}", f"out={out}", "k=6", "au_subset=shared",
                            f"share_with=[{corpora / 'daic'}]", *CPU])
    vocab = Vocabulary.load(out)
    assert vocab.au_names == list(DAICWOZ_AUS) and vocab.centroids.shape == (6, 14)
    assert summary["au_subset"]["left_out_of_corpus"] == ["AU07", "AU23", "AU45"]
    assert json.loads((out / "summary.json").read_text())["au_subset"]["au_names"] == list(DAICWOZ_AUS)
    # the 14-AU corpus then takes it as it is, without au_subset
    cluster.main([f"corpus={corpora / 'daic'}", f"vocab={out}", f"out={corpora / 'tok_on14'}", *CPU])
    assert Tokens.load(corpora / "tok_on14", vocab=vocab).au_names is None
