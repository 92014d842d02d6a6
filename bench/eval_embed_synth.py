"""Nearest-neighbour agreement of the embeddings with the synthetic hidden expression states.

    .venv/bin/python bench/eval_embed_synth.py --synth DIR --corpus DIR --vocab DIR --embed DIR

DIRs are the outputs of `synth.py kind=pretrain`, `ingest.py`, `cluster.py` and `embed.py` on
them. Each cluster token is labelled with the hidden state most of its frames came from; the
figure is the share of tokens whose cosine-nearest other token has the same label, next to chance
(two tokens drawn at random share a label), random vectors, and the k-means centres themselves
(nearest neighbours in AU space: what the embedding can learn from appearance alone is not used
by GloVe, which only sees which tokens occur near which in time).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.openface.corpus import FrameCorpus  # noqa: E402
from glove.files import read_embedding_file  # noqa: E402
from glove.report import nn_agreement, token_states  # noqa: E402
from utils import names  # noqa: E402
from utils.artifacts import load_torch  # noqa: E402
from utils.names import in_dir  # noqa: E402
from vocab.tokens import Tokens, Vocabulary  # noqa: E402


def evaluate(synth: Path, corpus_dir: Path, vocab_dir: Path, embed_dir: Path) -> list[tuple[str, float, float]]:
    tokens = Tokens.load(vocab_dir)
    corpus = FrameCorpus.load(corpus_dir)
    hidden = load_torch(in_dir(synth, names.HIDDEN), "hidden states")
    V = tokens.vocab_size
    states, purity = token_states(tokens.tokens, tokens.offsets, corpus.timestamps, corpus.offsets,
                                  corpus.sequence_ids, hidden, V)
    labelled = states >= 0
    rows = [(f"{labelled.sum()} tokens labelled, {len(set(states[labelled]))} states, "
             f"mean purity {purity[labelled].mean():.2f}", float("nan"), float("nan"))]
    centres = Vocabulary.load(vocab_dir).centroids.numpy()
    centres = np.concatenate([np.zeros((V - len(centres), centres.shape[1])), centres])
    rows.append(("k-means centres (AU space)", *nn_agreement(centres, states)))
    for file in sorted(embed_dir.glob("embeddings_d*.pt"), key=lambda p: int(p.stem.split("_d")[1])):
        e = read_embedding_file(file, d=int(file.stem.split("_d")[1]))
        rows.append((f"GloVe d={e['W'].shape[1]} (W + W~)", *nn_agreement((e["W"] + e["W_tilde"]).numpy(), states)))
    g = torch.Generator().manual_seed(0)
    rows.append(("random vectors (d=50)", *nn_agreement(torch.randn(V, 50, generator=g).numpy(), states)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("synth", "corpus", "vocab", "embed"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    args = ap.parse_args()
    rows = evaluate(args.synth, args.corpus, args.vocab, args.embed)
    print(rows[0][0])
    print("| vectors | nearest-neighbour agreement | chance |")
    print("|---|---|---|")
    for name, agreement, chance in rows[1:]:
        print(f"| {name} | {agreement:.3f} | {chance:.3f} |")


if __name__ == "__main__":
    main()
