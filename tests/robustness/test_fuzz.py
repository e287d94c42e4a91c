"""A few hundred seeded mutants of valid files: only success or a MediaError, never a hang,
never a crash of the server process (issue 8). Longer runs: `python -m tests.robustness.fuzz`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.robustness.fuzz import fuzz, mutate

CASES = 300


def test_mutations_are_seeded_and_really_change_the_file() -> None:
    import numpy as np

    data = bytes(range(256)) * 40
    first = [mutate(data, np.random.default_rng(5)) for _ in range(3)]
    again = [mutate(data, np.random.default_rng(5)) for _ in range(3)]
    assert first == again and all(mutant != data for mutant in first)


@pytest.mark.slow
def test_fuzzed_uploads_give_an_encode_or_a_media_error(tmp_path: Path) -> None:
    findings = fuzz(CASES, seed=2024, directory=tmp_path, timeout=30)
    counts = Counter(finding.outcome for finding in findings)
    assert len(findings) == CASES
    assert counts["ok"] > 0 and counts["media_error"] > 0  # the mutants exercise both paths
    bad = [finding for finding in findings if not finding.acceptable]
    assert not bad, "\n".join(f"{f.case}: {f.outcome} {f.detail}" for f in bad)
