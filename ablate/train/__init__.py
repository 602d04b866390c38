"""Training stages on transformers' Trainer."""
