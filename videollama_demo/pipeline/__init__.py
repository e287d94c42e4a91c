"""Ties media, encoders, prompts and the engine together: loading, encoding, caching, long videos."""

from .loading import load_pipeline
from .pipeline import Pipeline
from .runtime import RuntimeChoice, choose_runtime

__all__ = ["Pipeline", "RuntimeChoice", "choose_runtime", "load_pipeline"]
