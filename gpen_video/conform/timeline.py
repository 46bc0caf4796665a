"""Timelines in and out through OpenTimelineIO's adapters (schema objects inside, formats at
the edge).

The adapter is found by the file's type (``.otio``, ``.otioz``, ``.edl``, ``.xml`` for FCP 7
XML, ``.fcpxml``, ``.aaf``). OTIO and its adapters are optional (the ``editorial`` extra):
a missing one is one line naming the package to install. A CMX 3600 EDL stores no frame rate,
so reading one needs ``rate`` (``--rate``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gpen_video.errors import InputError, UsageError

EXTRA = 'pip install "gpen-video[editorial]"'
# file type → (OTIO adapter, the package that provides it)
ADAPTER_PACKAGES: dict[str, tuple[str, str]] = {
    ".otio": ("otio_json", "opentimelineio"),
    ".otioz": ("otioz", "opentimelineio"),
    ".edl": ("cmx_3600", "otio-cmx3600-adapter"),
    ".xml": ("fcp_xml", "otio-fcp-adapter"),
    ".fcpxml": ("fcpx_xml", "otio-fcpx-xml-adapter"),
    ".aaf": ("AAF", "otio-aaf-adapter"),
}
NEEDS_RATE = frozenset({"cmx_3600"})


def otio_module() -> Any:
    """``opentimelineio``, imported.

    Raises:
        UsageError: it is not installed (names the extra).
    """
    try:
        import opentimelineio
    except ImportError:
        raise UsageError(f"conform needs OpenTimelineIO: {EXTRA} (or pip install "
                         "opentimelineio opentimelineio-plugins)") from None
    return opentimelineio


def adapter_for(path: Path) -> str:
    """The OTIO adapter name for ``path``'s file type.

    Raises:
        UsageError: no adapter for it is installed (names the package), or the type is unknown.
    """
    otio = otio_module()
    suffix = path.suffix.lower()
    known = ADAPTER_PACKAGES.get(suffix)
    names = {a.name for a in otio.plugins.ActiveManifest().adapters}
    if known is not None and known[0] in names:
        return known[0]
    if known is not None:
        raise UsageError(f"reading {suffix} timelines needs the {known[0]} adapter: pip install "
                         f"{known[1]} (or {EXTRA})")
    try:
        return otio.adapters.from_filepath(str(path)).name
    except Exception:  # noqa: BLE001 - OTIO's own "no adapter" errors vary by version
        types = ", ".join(sorted(ADAPTER_PACKAGES))
        raise UsageError(f"{path.name}: no OTIO adapter reads {suffix or 'files without a type'}"
                         f" (timelines: {types})") from None


def read_timeline(path: Path, rate: float | None = None) -> Any:
    """The timeline in ``path`` (an ``opentimelineio.schema.Timeline``).

    Raises:
        UsageError: no adapter for its type; an EDL without ``rate``; a file holding several
            timelines.
        InputError: missing or unreadable, or the adapter cannot parse it.
    """
    otio = otio_module()
    if not path.is_file():
        raise InputError(f"timeline {path} does not exist")
    adapter = adapter_for(path)
    kwargs: dict[str, Any] = {}
    if adapter in NEEDS_RATE:
        if rate is None:
            raise UsageError(f"{path.name}: an EDL does not store its frame rate: give --rate "
                             "(the source media's, e.g. --rate 25 or --rate 23.976)")
        kwargs["rate"] = rate
    try:
        result = otio.adapters.read_from_file(str(path), adapter_name=adapter, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every adapter raises its own kinds
        raise InputError(f"timeline {path} cannot be read by OTIO's {adapter} adapter: "
                         f"{type(exc).__name__}: {exc}") from None
    return _one_timeline(result, path)


def _one_timeline(result: Any, path: Path) -> Any:
    import opentimelineio as otio

    if isinstance(result, otio.schema.Timeline):
        return result
    timelines = list(result.find_children(descended_from_type=otio.schema.Timeline)) \
        if hasattr(result, "find_children") else []
    if len(timelines) == 1:
        return timelines[0]
    names = ", ".join(repr(t.name) for t in timelines) or "none"
    raise UsageError(f"{path.name} holds {len(timelines)} timelines ({names}): export the one "
                     "to conform on its own")


def writes(adapter: str) -> bool:
    """True if the installed adapter ``adapter`` can write files."""
    otio = otio_module()
    try:
        plugin = otio.plugins.ActiveManifest().from_name(adapter)
    except Exception:  # noqa: BLE001
        return False
    return plugin.has_feature("write_to_file") or plugin.has_feature("write_to_string")


def write_timeline(timeline: Any, path: Path, adapter: str, rate: float | None = None) -> None:
    """Write ``timeline`` to ``path`` with ``adapter``, through a temporary file renamed into
    place (nothing partial at ``path``). EDL reel names are written in full (no 8-character
    cut: the restored files' names are longer and must stay distinct)."""
    import opentimelineio as otio

    kwargs: dict[str, Any] = {}
    if adapter == "cmx_3600":
        kwargs = {"rate": rate, "reelname_len": None}
    temp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        otio.adapters.write_to_file(timeline, str(temp), adapter_name=adapter, **kwargs)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
