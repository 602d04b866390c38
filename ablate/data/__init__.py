"""Data: sources, mixtures and the tokenized-dataset pipeline. See `contracts.py`."""
