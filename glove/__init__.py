"""The embedding stage (embed.py): the co-occurrence matrix, the GloVe trainer, the file formats, the embedding report. Its loss is losses/glove.py, its module models/glove.py."""
