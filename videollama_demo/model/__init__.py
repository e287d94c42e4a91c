"""Tensors in, LLM-space embeddings out: the encoders, the official weight table, the frozen LLM."""
