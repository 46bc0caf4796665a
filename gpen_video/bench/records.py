"""Where the benchmark scripts (``benchmarks/*.py``) put what they measured.

* :func:`write_section` / :func:`update_section` — replace a marked section
  (``<!-- name:begin -->`` … ``<!-- name:end -->``) of ``benchmarks/RESULTS.md``, or append it.
* :func:`write_json` — a result dict as JSON (parent folders made, trailing newline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NEW_RESULTS_MD = "# Benchmark results\n"


def section_markers(name: str) -> tuple[str, str]:
    """The begin and end markers of section ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def write_section(path: Path, block: str, begin: str, end: str) -> None:
    """Replace ``begin`` … ``end`` (markers included) in ``path`` by ``block``, which carries the
    markers itself; append ``block`` where the section is not there yet. A missing file starts as
    a bare "Benchmark results" heading."""
    text = path.read_text() if path.exists() else NEW_RESULTS_MD
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def update_section(path: Path, name: str, block: str) -> None:
    """:func:`write_section` for a ``block`` without markers: it goes between ``name``'s."""
    begin, end = section_markers(name)
    write_section(path, f"{begin}\n{block.strip()}\n{end}", begin, end)


def write_json(path: Path, data: Any, indent: int = 1, default: Any = None) -> None:
    """``data`` as JSON at ``path`` (folders made), ending in a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent, default=default) + "\n")
