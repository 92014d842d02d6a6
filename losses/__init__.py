"""Losses that are more than one line of torch: the GloVe weighted least squares."""
