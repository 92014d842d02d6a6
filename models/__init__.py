"""Models: k-means (the vocabulary), GloVe, BiLSTMs and baselines; `registry.py` maps names to them."""
