"""The media files a timeline names: where they are, what they hold, and the checks made before
anything renders.

* A reference's target is a path or a ``file://`` URL; a relative one is relative to the
  timeline's folder. One that does not exist is looked for by file name in each
  ``--search-path`` folder (and below it), in the order given; an EDL event without a source
  file is looked for by its clip name, then its reel name (with any video file type).
* Every missing file is listed in one error, before anything renders.
* Each file is opened once (:class:`gpen_video.media.VideoSource`: frame count, rate, timecode).
  Its *origin* (the media frame of its first frame, :mod:`gpen_video.conform.plan`) is the
  timeline's available-range start for it, else the file's timecode, else 0.
* The output folder may not lie inside a media file's folder (the restored files, named after
  the sources, would sit among the camera files).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from gpen_video.conform.plan import MISSING, ClipUse, MediaFacts
from gpen_video.errors import InputError, UsageError

log = logging.getLogger("gpen_video.conform")

VIDEO_SUFFIXES = (".mov", ".mp4", ".mxf", ".mkv", ".m4v", ".avi", ".qt")


@dataclass(frozen=True)
class Media:
    """One media file of the timeline, found and probed."""

    key: str  # plan.media_key
    path: Path
    facts: MediaFacts
    timecode: str | None  # the file's own start timecode
    drop_frame: bool  # its timecode counts drop-frame
    suffix: str  # its file type (the restored files keep it when the codec fits)


def url_to_path(url: str, base: Path) -> Path:
    """A reference's target as a local path (``file://`` URLs decoded; relative to ``base``)."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        text = unquote(parsed.path)
        if len(text) > 2 and text[0] == "/" and text[2] == ":":  # file:///C:/…
            text = text[1:]
        path = Path(text)
    else:
        path = Path(url)
    return path if path.is_absolute() else base / path


def _names_to_find(key: str, uses: list[ClipUse], base: Path) -> list[str]:
    """File names (or stems, for names without a type) to look for in the search paths."""
    if not key.startswith(MISSING):
        return [url_to_path(key, base).name]
    names = []
    for use in uses:
        clip = use.clip
        reel = ((clip.metadata.get("cmx_3600") or {}).get("reel") if clip is not None else None)
        for name in (key[len(MISSING):], use.name, reel):
            if name and name.strip() and name.strip() not in names:
                names.append(name.strip())
    return names


class _SearchIndex:
    """File names under the ``--search-path`` folders, read once."""

    def __init__(self, folders: list[Path]) -> None:
        self._files: list[Path] = []
        for folder in folders:
            if not folder.is_dir():
                raise UsageError(f"--search-path {folder} is not a folder")
            for root, dirs, files in os.walk(folder):
                dirs.sort()
                self._files += [Path(root) / f for f in sorted(files) if not f.startswith(".")]

    def find(self, names: list[str]) -> Path | None:
        for name in names:
            exact = [p for p in self._files if p.name == name]
            if not exact and not Path(name).suffix:
                exact = [p for p in self._files
                         if p.stem == name and p.suffix.lower() in VIDEO_SUFFIXES]
            if exact:
                if len(exact) > 1:
                    log.warning("%s is in several search folders; using %s", name, exact[0])
                return exact[0]
        return None


def locate(uses: list[ClipUse], timeline_dir: Path, search_paths: list[Path]
           ) -> dict[str, Path]:
    """The file of every media key the clips use.

    Raises:
        InputError: files are missing (every one listed, with its clips, in one message).
        UsageError: a search path is not a folder.
    """
    by_key: dict[str, list[ClipUse]] = {}
    for use in uses:
        by_key.setdefault(use.media, []).append(use)
    index = _SearchIndex(search_paths) if search_paths else None
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, clips in by_key.items():
        path = None if key.startswith(MISSING) else url_to_path(key, timeline_dir)
        if path is None or not path.is_file():
            names = _names_to_find(key, clips, timeline_dir)
            path = index.find(names) if index is not None else None
            if path is not None:
                log.info("relinked %s to %s (by file name)", key, path)
        if path is None:
            shown = (f"{key[len(MISSING):]!r} (the timeline gives only this name, no file)"
                     if key.startswith(MISSING) else key)
            clip_names = ", ".join(repr(c.name) for c in clips[:3])
            more = f" and {len(clips) - 3} more" if len(clips) > 3 else ""
            missing.append(f"{shown} (clips {clip_names}{more})")
            continue
        found[key] = path
    if missing:
        where = ("not found in the --search-path folders either" if search_paths
                 else "give --search-path DIR to find them by file name")
        raise InputError(f"{len(missing)} media file(s) of the timeline are missing, nothing was "
                         f"rendered: {'; '.join(missing)} — {where}")
    return found


def by_file(uses: list[ClipUse], found: dict[str, Path]
            ) -> tuple[list[ClipUse], dict[str, Path]]:
    """Clips whose references name one file in different ways (a path and a URL, a relative
    path, a link) grouped under one key, so that its ranges merge and render once."""
    canonical = {key: str(path.resolve()) for key, path in found.items()}
    files = {canonical[key]: path for key, path in found.items()}
    return [replace(u, media=canonical[u.media]) for u in uses], files


def probe(found: dict[str, Path], uses: list[ClipUse]) -> dict[str, Media]:
    """Open each file once and work out its origin (module docstring).

    Raises:
        InputError: a file is not a video this product reads.
    """
    from gpen_video.media import VideoSource
    from gpen_video.media.timecode import is_drop_frame, parse_timecode

    declared: dict[str, int] = {}
    for use in uses:
        if use.declared_start is not None:
            declared.setdefault(use.media, use.declared_start)
    out = {}
    for key, path in found.items():
        with VideoSource(path) as src:
            fps, frames, tc = float(src.fps), src.frame_count, src.timecode
        own = None
        if tc:
            try:
                own = parse_timecode(tc, fps)
            except UsageError:
                log.warning("%s: timecode %r not understood; counted from 0", path.name, tc)
        origin = declared.get(key, own if own is not None else 0)
        if own is not None and key in declared and declared[key] != own:
            log.warning("%s: the timeline places its first frame at media frame %d, its "
                        "timecode %s says %d; following the timeline", path.name,
                        declared[key], tc, own)
        out[key] = Media(key=key, path=path, facts=MediaFacts(frames=frames, fps=fps,
                                                             origin=origin),
                         timecode=tc, drop_frame=bool(tc) and is_drop_frame(tc),
                         suffix=path.suffix.lower())
    return out


def check_outdir(outdir: Path, media: list[Media]) -> None:
    """The output folder must not be (or lie inside) a media file's folder, nor be a file.

    Raises:
        UsageError: it is.
    """
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"OUTDIR {outdir} is a file: give a folder for the restored media")
    target = outdir.resolve()
    for m in media:
        folder = m.path.resolve().parent
        if target == folder or folder in target.parents:
            raise UsageError(f"OUTDIR {outdir} is inside the folder of the media "
                             f"{m.path.name} ({folder}): the restored files would sit among the "
                             "sources; choose a folder outside it")
