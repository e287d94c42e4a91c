"""The benchmark suite (bench/) in --quick mode: every row runs on small real inputs and the printed
table has every row with a numeric ratio (the targets are not checked: timings on a shared CI
machine are not the point here, that the suite runs is)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from bench import run_all
from bench.report import COLUMNS, NO_GPU
from videollama_demo.pipeline.encode_cache import EncodeCache

EXPECTED_ROWS = ("1.", "2a.", "2b.", "3.", "4.", "5.", "6.", "7.", "8.", "9a.", "9b.", "10.")
RATIO = re.compile(r"^\d+(\.\d+)?(×|%| ms| s)$")


def table_rows(output: str) -> dict[str, list[str]]:
    """The markdown table's body rows, keyed by their row number ("1.", "2a.", ...)."""
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |"
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[1:]]
    return {row[0].split()[0]: row for row in cells}


def test_every_row_runs_quickly_and_reports_a_number(preview_pipeline, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all.main(["--quick", "--cache-dir", str(tmp_path)], pipeline=preview_pipeline) == 0
    output = capsys.readouterr().out
    rows = table_rows(output)
    assert tuple(rows) == EXPECTED_ROWS
    for number, row in rows.items():
        assert len(row) == len(COLUMNS), row
        gpu_row = number in ("6.", "7.")
        if gpu_row and not torch.cuda.is_available():
            assert row[3] == NO_GPU
        else:
            assert RATIO.match(row[3]), f"row {number} has no numeric ratio: {row[3]!r}"
            # A cache hit may cost nothing measurable: 0.0% is a result; a negative one is not.
            assert float(re.match(r"[\d.]+", row[3]).group()) >= 0
    assert "Machine: " in output and "cores" in output and f"torch {torch.__version__}" in output
    assert (tmp_path / ".gitignore").read_text().strip().endswith("*")  # generated media stay out of git
    assert isinstance(preview_pipeline.encode_cache, EncodeCache) and preview_pipeline.encode_cache.memory_bytes > 0
