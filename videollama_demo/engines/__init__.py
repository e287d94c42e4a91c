"""LLM engines: who runs the LLM (local transformers with kept KV caches, or a vLLM server)."""
