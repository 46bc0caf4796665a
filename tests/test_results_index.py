"""``benchmarks/results/`` holds exactly the files ``benchmarks/RESULTS.md`` cites: every cited
file exists, every file there is cited, and every benchmark script RESULTS.md names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
RESULTS_MD = BENCH / "RESULTS.md"


def _cited() -> set[str]:
    """Names of the files RESULTS.md cites as ``results/NAME`` (any prefix)."""
    text = RESULTS_MD.read_text()
    return {m.group(1) for m in re.finditer(r"results/([A-Za-z0-9_.\-]+\.(?:json|txt))", text)}


def test_every_cited_results_file_exists():
    missing = sorted(n for n in _cited() if not (BENCH / "results" / n).is_file())
    assert missing == [], f"RESULTS.md cites files benchmarks/results/ lacks: {missing}"


def test_every_results_file_is_cited():
    files = {p.name for p in (BENCH / "results").iterdir() if p.is_file()}
    assert files, "benchmarks/results/ is empty"
    uncited = sorted(files - _cited())
    assert uncited == [], f"files in benchmarks/results/ that RESULTS.md does not cite: {uncited}"


def test_every_script_results_md_names_exists():
    text = RESULTS_MD.read_text()
    scripts = set(re.findall(r"benchmarks/([a-z0-9_]+\.py)", text))
    assert scripts, "RESULTS.md names no benchmark script"
    missing = sorted(s for s in scripts if not (BENCH / s).is_file())
    assert missing == [], f"RESULTS.md names scripts that are gone: {missing}"


def test_every_picture_results_md_shows_exists():
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", RESULTS_MD.read_text()):
        assert (BENCH / name).is_file(), name
