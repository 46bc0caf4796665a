"""The restored timeline: every clip whose range was restored points at the restored file.

Each such clip gets OTIO's multiple media references: ``restored`` (active) — an
``ExternalReference`` to ``OUTDIR/<media stem>_<first>-<last>.<ext>`` whose available range
starts at the media frame (timecode) of the file's first frame and lasts its frames — and
``original``, the reference it had. Its source range, effects, name and metadata are unchanged,
so it shows the same frames, now found in the restored file by timecode. Every other clip is
left as it was (gaps, generators, audio, clips of ranges without a face).

Written as ``OUTDIR/<timeline>.restored.otio`` and, when the input was another format whose
adapter writes (CMX 3600 EDL, FCP 7 XML, …), also in that format
(``OUTDIR/<timeline>.restored.edl``): there the events name the restored files (EDL: reel = the
restored file's name without its type, ``* FROM CLIP:`` its path).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gpen_video.conform.plan import ClipUse
from gpen_video.conform.render import RangeResult

log = logging.getLogger("gpen_video.conform")

RESTORED = "restored"
ORIGINAL = "original"


def _target(path: Path, like: str | None) -> str:
    """``path`` written as the original reference wrote its target (a file:// URL or a path)."""
    path = path.resolve()
    return path.as_uri() if like and like.startswith("file:") else str(path)


def relink(uses: list[ClipUse], results: list[RangeResult]) -> int:
    """Point the clips of every restored range at its file (module docstring), in place.
    Returns the number of clips relinked."""
    import opentimelineio as otio

    RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
    done = 0
    for result in results:
        if not result.relinked:
            continue
        job = result.job
        for index in job.range.clips:
            use = uses[index]
            clip = use.clip
            original = clip.media_reference
            rate = use.rate
            restored = otio.schema.ExternalReference(
                target_url=_target(job.output, getattr(original, "target_url", None)),
                available_range=TR(RT(job.media.facts.origin + job.range.first, rate),
                                   RT(job.range.count, rate)))
            restored.name = job.output.name
            restored.metadata["gpen_video"] = {"restored_from": str(job.media.path),
                                               "frames": [job.range.first, job.range.last]}
            refs = {key: ref.clone() for key, ref in clip.media_references().items()
                    if key not in (RESTORED, ORIGINAL)
                    and key != clip.active_media_reference_key}
            refs[ORIGINAL] = original.clone()
            refs[RESTORED] = restored
            clip.set_media_references(refs, RESTORED)
            done += 1
    return done


def write_restored(timeline: Any, timeline_path: Path, outdir: Path, adapter: str,
                   rate: float | None) -> list[Path]:
    """Write the relinked ``timeline`` as .otio, and in the input's format when its adapter
    writes (module docstring). Returns the files written."""
    from gpen_video.conform.timeline import write_timeline, writes

    stem = timeline_path.stem
    written = [outdir / f"{stem}.restored.otio"]
    write_timeline(timeline, written[0], "otio_json")
    if adapter in ("otio_json", "otioz") or not writes(adapter):
        return written
    native = outdir / f"{stem}.restored{timeline_path.suffix.lower()}"
    copy = timeline.clone()
    if adapter == "cmx_3600":
        _name_reels(copy)
    try:
        write_timeline(copy, native, adapter, rate=rate)
    except Exception as exc:  # noqa: BLE001 - adapters raise their own kinds
        log.warning("the restored timeline could not be written as %s (%s: %s); the .otio "
                    "holds it", native.name, type(exc).__name__, exc)
        return written
    return written + [native]


def _name_reels(timeline: Any) -> None:
    """EDL events of restored clips: reel = the restored file's name without its type."""
    for clip in timeline.find_clips():
        if clip.active_media_reference_key != RESTORED:
            continue
        reel = Path(clip.media_reference.name or "restored").stem
        clip.metadata.setdefault("cmx_3600", {})
        clip.metadata["cmx_3600"]["reel"] = reel
