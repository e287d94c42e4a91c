"""The batch report: one self-contained HTML page from `results.jsonl` rows.

A section per video: the frames the model saw under each setting (JPEG strips embedded as data
URIs, so the page can be mailed or attached to a ticket alone), then a table with a row per
question and a column per setting, the answers side by side. Preview answers carry the warning.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Row = dict[str, Any]

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1f2937; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.meta { color: #6b7280; font-size: 12px; }
.preview { background: #fef3c7; border: 2px solid #d97706; padding: 10px 14px; border-radius: 6px; margin: 12px 0; }
.error { color: #b91c1c; }
figure { display: inline-block; margin: 4px 12px 8px 0; } figcaption { font-size: 12px; color: #4b5563; }
figure img { height: 72px; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #e5e7eb; padding: 6px 8px; vertical-align: top; text-align: left; }
th { background: #f3f4f6; } td.q { width: 22%; font-weight: 600; }
.answer { white-space: pre-wrap; }
"""


def write_report(rows: list[Row], out_dir: Path, title: str = "Video-LLaMA batch report") -> Path:
    """Write `out_dir/report.html` from `rows` (frame strips read from `out_dir`) and return its path."""
    target = out_dir / "report.html"
    target.write_text(render_report(rows, out_dir, title), encoding="utf-8")
    return target


def render_report(rows: list[Row], out_dir: Path, title: str) -> str:
    settings = list(dict.fromkeys(row["setting_label"] for row in rows))
    videos = list(dict.fromkeys(row["video"] for row in rows))
    body = [f"<h1>{_text(title)}</h1>", _summary(rows, videos, settings), _preview_warning(rows)]
    body += [_video_section(video, [r for r in rows if r["video"] == video], settings, out_dir) for video in videos]
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{_text(title)}</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


def _summary(rows: list[Row], videos: list[str], settings: list[str]) -> str:
    models = ", ".join(dict.fromkeys(str(row.get("model")) for row in rows)) or "none"
    answered = sum(1 for row in rows if row.get("answer") is not None)
    errors = sum(1 for row in rows if row.get("error"))
    return (f"<p class='meta'>{len(videos)} files, {len(settings)} setting(s), {answered} answers, "
            f"{errors} errors; model: {_text(models)}</p>")


def _preview_warning(rows: list[Row]) -> str:
    reasons = list(dict.fromkeys(str(row.get("preview_reason")) for row in rows if row.get("preview")))
    if not reasons:
        return ""
    return ("<div class='preview'><b>Preview model: these answers are NOT about the videos.</b> The official "
            "Video-LLaMA weights were not loaded (" + _text("; ".join(reasons)) + "), so a small text model "
            "answered without seeing them. The frames shown are real: they are what the encoders read.</div>")


def _video_section(video: str, rows: list[Row], settings: list[str], out_dir: Path) -> str:
    digest = next((row["digest"] for row in rows if row.get("digest")), None)
    parts = [f"<h2>{_text(Path(video).name)}</h2>",
             f"<p class='meta'>{_text(video)}" + (f" · sha256 {digest[:12]}" if digest else "") + "</p>"]
    parts += [_error(row) for row in rows if row.get("question") is None]
    parts += [_frames(row, out_dir) for row in _first_per_setting(rows)]
    questions = list(dict.fromkeys(row["question"] for row in rows if row.get("question") is not None))
    if questions:
        parts.append(_answers_table(rows, questions, settings))
    return "".join(parts)


def _first_per_setting(rows: Iterable[Row]) -> list[Row]:
    first: dict[str, Row] = {}
    for row in rows:
        if row.get("frames_image"):
            first.setdefault(row["setting_label"], row)
    return list(first.values())


def _frames(row: Row, out_dir: Path) -> str:
    times = ", ".join(f"{t:.1f}" for t in row.get("frame_times") or [])
    audio = "audio used" if row.get("audio_used") else (row.get("audio_note") or "no audio")
    caption = f"{row['setting_label']}: frames at {times} s; {audio}"
    return f"<figure>{_image(out_dir / row['frames_image'], caption)}<figcaption>{_text(caption)}</figcaption></figure>"


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<span class='meta'>(frames image missing: {_text(path.name)})</span>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{_text(alt)}' src='data:image/jpeg;base64,{data}'>"


def _error(row: Row) -> str:
    return f"<p class='error'>{_text(row['setting_label'])}: {_text(row.get('error') or '')}</p>"


def _answers_table(rows: list[Row], questions: list[str], settings: list[str]) -> str:
    cells = {(row["question"], row["setting_label"]): row for row in rows if row.get("question") is not None}
    shown = [label for label in settings if any((q, label) in cells for q in questions)]
    head = "<tr><th>question</th>" + "".join(f"<th>{_text(label)}</th>" for label in shown) + "</tr>"
    body = "".join(
        f"<tr><td class='q'>{_text(question)}</td>"
        + "".join(_answer_cell(cells.get((question, label))) for label in shown) + "</tr>"
        for question in questions)
    return f"<table>{head}{body}</table>"


def _answer_cell(row: Row | None) -> str:
    if row is None:
        return "<td class='meta'>not run</td>"
    if row.get("error"):
        return f"<td class='error'>{_text(row['error'])}</td>"
    meta = f"{row.get('seconds', 0):.1f} s, {row.get('tokens', 0)} tokens"
    return f"<td><div class='answer'>{_text(row.get('answer') or '')}</div><div class='meta'>{meta}</div></td>"


def _text(value: str) -> str:
    return html.escape(str(value), quote=True)
