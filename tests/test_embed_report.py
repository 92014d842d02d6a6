"""embed.py's honest reporting: per-d figures and warnings in summary.json, the embedding report,
tokens that never occur left out of the Stanford files and zero in embeddings_d{d}.pt."""
from __future__ import annotations

import json

import numpy as np
import torch

import embed
from glove.files import CREC
from tests.test_embed_script import V, write_tokens


def test_summary_report_and_tokens_that_never_occur(tmp_path, capsys):
    folder = write_tokens(tmp_path / "vocab")
    data = torch.load(folder / "tokens.pt", weights_only=True)
    data["tokens"][data["tokens"] == 7] = 8                                 # id 7 (c4) never occurs
    torch.save(data, folder / "tokens.pt")
    out = tmp_path / "embed"
    embed.main([f"tokens={folder}", f"out={out}", "dims=[2,30]", "device=cpu", "glove.epochs=40", "glove.log_every=5"])
    log = capsys.readouterr().out

    names = [line.split()[0] for line in (out / "vocab.txt").read_text().splitlines()]
    assert "c4" not in names and len(names) == V - 1
    records = np.fromfile(out / "cooccurrence.bin", dtype=CREC)
    assert records["word1"].max() == V - 1 and records["word2"].min() == 1           # renumbered 1..V-1
    for suffix in (".txt", ".w2v.txt"):
        lines = (out / f"vectors_d2{suffix}").read_text().splitlines()
        assert not any(line.startswith("c4 ") for line in lines)
    assert (out / "vectors_d2.w2v.txt").read_text().startswith(f"{V - 1} 2\n")
    emb = torch.load(out / "embeddings_d2.pt", weights_only=True)
    assert emb["learned"].tolist() == [i != 7 for i in range(V)]
    assert torch.all(emb["W"][7] == 0) and torch.all(emb["W_tilde"][7] == 0)       # train.py starts it at 0
    assert "1 of 11 tokens never occur (c4)" in log

    summary = json.loads((out / "summary.json").read_text())
    assert summary["never_occur"] == ["c4"]
    small, big = summary["dims"]["2"], summary["dims"]["30"]
    for fit in (small, big):
        assert {"J", "J_per_nonzero", "rel_change", "epochs", "seconds", "stopping_rule_met", "warnings"} <= set(fit)
        assert fit["J_per_nonzero"] == fit["J"] / summary["nonzeros"]
    assert big["over_parameterised"] and big["parameters"] == 2 * 31 * (V - 1)     # 2dV + 2V of the learned tokens
    assert any(w.startswith("over-parameterised") for w in big["warnings"])
    assert "d=30: WARNING over-parameterised" in log and "ETA" in log

    report = json.loads((out / "embedding_report.json").read_text())
    assert set(report) == {"2", "30"} and report["2"]["learned"] == V - 1
    assert "mean_pairwise_cosine" in report["2"] and "norm_median_by_count_quartile" in report["2"]
