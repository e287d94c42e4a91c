"""Benchmarks that print one markdown table of ratios: ours against the naive (official) way.

    python -m bench            # every row, full size (a few minutes on 2 CPU cores)
    python -m bench --quick    # a smoke run on small inputs
    python -m bench.frames     # one row alone (also: second_upload, ttft, gradio_stream, peak_rss, gpu)

Each row module has `run(ctx) -> list[Row]`; `bench.run_all` runs them in order. Generated media
go to `bench/.cache/` (ignored by git; see `bench.media`).
"""

import os

# Set before transformers, huggingface_hub or gradio are imported: they read these once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
