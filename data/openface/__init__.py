"""OpenFace 2.x CSVs: the format (columns, writer), the reader, timestamp resampling, and ingestion into the frame corpus this stage owns (corpus.py)."""
