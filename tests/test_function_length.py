"""No function in ``gpen_video/`` is longer than 80 lines (read statically; nothing imported).

A function's length is counted from its ``def`` line (decorators excluded) to its last line,
docstring, comments and blank lines included: what a reader has to hold. Nested functions count
inside their parent and on their own.

Exceptions are listed in :data:`EXCEPTIONS`, each with its reason; the test fails when one is no
longer needed, so the list stays true.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gpen_video"
LIMIT = 80

# "path relative to gpen_video/::function" → why it may be longer
EXCEPTIONS: dict[str, str] = {}


def long_functions(limit: int = LIMIT) -> dict[str, int]:
    """``{"path::name": lines}`` of every function over ``limit`` lines."""
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found[f"{path.relative_to(PACKAGE).as_posix()}::{node.name}"] = lines
    return found


def test_no_function_is_longer_than_80_lines() -> None:
    over = {k: v for k, v in long_functions().items() if k not in EXCEPTIONS}
    assert not over, "functions over 80 lines (split them): " + ", ".join(
        f"{name} ({lines} lines)" for name, lines in sorted(over.items()))


def test_every_exception_is_still_needed() -> None:
    stale = sorted(set(EXCEPTIONS) - set(long_functions()))
    assert not stale, f"no longer over {LIMIT} lines, remove from EXCEPTIONS: {stale}"
