"""Serving on a public host: the guard in front of Gradio and the housekeeper behind it, wired to
one `gr.Blocks` (the mechanics are in limits.py and housekeeping.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from .housekeeping import Housekeeper, Upkeep, is_model_job, jobs_by_address, queue_length
from .limits import HostGuard, HostLimits


def guarded_app_kwargs(demo: gr.Blocks, limits: HostLimits, concurrency_id: str) -> dict[str, Any]:
    """`launch(app_kwargs=...)` that puts `HostGuard` in front of every Gradio route."""
    guard = Middleware(
        HostGuard, limits=limits,
        jobs_of=lambda address: jobs_by_address(demo, address, limits.trusted_proxy),
        queue_length=lambda: queue_length(demo),
        upload_folder=lambda: Path(gr.utils.get_upload_folder()),
        is_model_job=lambda target: is_model_job(demo, target, concurrency_id))
    return {"middleware": [guard]}


def start_housekeeping(demo: gr.Blocks, upkeep: Upkeep) -> Housekeeper:
    """Start (once per Blocks) the thread that ends idle sessions and sweeps old files."""
    keeper = getattr(demo, "housekeeper", None)
    if keeper is None:
        keeper = Housekeeper(demo, upkeep, ended=getattr(demo, "ended_sessions", None))
        keeper.start()
        demo.housekeeper = keeper  # type: ignore[attr-defined]  # for tests and close
    return keeper


def merged_app_kwargs(*parts: dict[str, Any]) -> dict[str, Any]:
    """One `launch(app_kwargs=...)` from several: lists (middleware, routes) are joined, dicts
    (exception handlers) merged, so the host guard and the API routes both reach the FastAPI app."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, list):
                merged[key] = [*merged.get(key, []), *value]
            elif isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return merged
