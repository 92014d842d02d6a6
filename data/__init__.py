"""Frames: OpenFace reading, ingestion into a compact corpus, the synthetic generator, sequence loading."""
