"""The vocabulary stage (cluster.py): assignment to the nearest centre, k-means fitting, the k sweep and its knee, tokens and the vocabulary files, plots."""
