"""What a conform used, rendered and saved: per clip, per media file, in total.

Frame numbers in the report are 0-based file frames (what ``gpen-video --frames`` takes).
The saving compares the frames the plan renders (every range, handles included) with the
frames of the media files the edit references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpen_video.conform.media import Media
from gpen_video.conform.plan import ClipUse, Skipped, Use, distinct_frames
from gpen_video.conform.render import RangeResult


@dataclass
class ConformReport:
    """The whole report; :meth:`as_dict` for ``--json``, :meth:`text` for people."""

    timeline: Path
    outdir: Path
    dry_run: bool
    clips: list[dict[str, Any]] = field(default_factory=list)
    media: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    totals: dict[str, Any] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)  # restored timelines

    def as_dict(self) -> dict[str, Any]:
        return {"timeline": str(self.timeline), "outdir": str(self.outdir),
                "dry_run": self.dry_run, "clips": self.clips, "media": self.media,
                "skipped": self.skipped, "totals": self.totals, "timelines": self.written}

    def text(self) -> str:
        t = self.totals
        head = "plan (dry run, nothing rendered)" if self.dry_run else "conform"
        lines = [f"gpen-video conform: {head} of {self.timeline.name}: {t['clips']} clips of "
                 f"{t['media_files']} media files; skipped: {t['skipped_text']}"]
        for m in self.media:
            lines.append(f"  {m['path']}: {m['frames']} frames, {m['used_frames']} used, "
                         f"{m['render_frames']} to render in {len(m['ranges'])} range(s)")
            for r in m["ranges"]:
                faces = ("" if r["status"] == "planned" or r["faces"] is None
                         else f", {r['faces']} faces")
                lines.append(f"    {r['first']}-{r['last']} ({r['frames']} frames) → "
                             f"{r['output']}: {r['status']}{faces}")
        for c in self.clips:
            effect = f", {c['effect']}" if c["effect"] else ""
            lines.append(f"  clip {c['name']!r} ({c['track']}{effect}): frames "
                         f"{c['used'][0]}-{c['used'][1]} of {Path(c['media']).name}, with "
                         f"handles {c['handles'][0]}-{c['handles'][1]} → {c['status']}")
        lines.append(f"  frames to render: {t['render_frames']} of {t['media_frames']} in the "
                     f"referenced media ({t['render_share']:.1%}; saving "
                     f"{1 - t['render_share']:.1%}); rendered now: {t['rendered_now']}, "
                     f"reused: {t['reused_frames']}")
        if "seconds" in t:
            lines.append(f"  took {t['seconds']:.1f} s")
        lines += [f"  wrote {w}" for w in self.written]
        return "\n".join(lines)


def build(timeline: Path, outdir: Path, dry_run: bool, uses: list[ClipUse], skipped: Skipped,
          file_uses: list[Use], results: list[RangeResult], media: dict[str, Media]
          ) -> ConformReport:
    report = ConformReport(timeline=timeline, outdir=outdir, dry_run=dry_run,
                           skipped=skipped.as_dict())
    range_of = {i: r for r in results for i in r.job.range.clips}
    for use, fu in zip(uses, file_uses):
        result = range_of.get(use.index)
        status = "planned" if result is None else _clip_status(result)
        report.clips.append({
            "name": use.name, "track": use.track, "media": str(media[use.media].path),
            "effect": use.effect, "shown_frames": use.shown, "used": [fu.first, fu.last],
            "handles": [fu.wide_first, fu.wide_last],
            "output": None if result is None else result.job.output.name, "status": status,
            # of the range it is in (the render counts faces per range)
            "range_faces": None if result is None else result.faces,
            "range_tracks": None if result is None else result.tracks})
    for key in sorted(media, key=lambda k: str(media[k].path)):
        mine = [r for r in results if r.job.media.key == key]
        spans = [(fu.first, fu.last) for use, fu in zip(uses, file_uses) if use.media == key]
        report.media.append({
            "path": str(media[key].path), "frames": media[key].facts.frames,
            "fps": media[key].facts.fps, "timecode": media[key].timecode,
            "used_frames": distinct_frames(spans),
            "render_frames": sum(r.job.range.count for r in mine),
            "ranges": [{"first": r.job.range.first, "last": r.job.range.last,
                        "frames": r.job.range.count, "output": r.job.output.name,
                        "status": r.status, "faces": r.faces, "tracks": r.tracks,
                        "clips": [uses[i].name for i in r.job.range.clips]} for r in mine]})
    report.totals = _totals(uses, skipped, results, media)
    return report


def _clip_status(result: RangeResult) -> str:
    if result.status == "planned":
        return "planned"
    if result.relinked:
        return f"restored ({result.status})"
    return "kept: no face in its range"


def _totals(uses: list[ClipUse], skipped: Skipped, results: list[RangeResult],
            media: dict[str, Media]) -> dict[str, Any]:
    media_frames = sum(m.facts.frames for m in media.values())
    render = sum(r.job.range.count for r in results)
    return {"clips": len(uses), "media_files": len(media), "skipped_text": skipped.text(),
            "media_frames": media_frames, "render_frames": render,
            "render_share": render / media_frames if media_frames else 0.0,
            "rendered_now": sum(r.job.range.count for r in results
                                if r.status in ("rendered", "no face") and not r.reused),
            "reused_frames": sum(r.job.range.count for r in results if r.reused),
            "ranges": len(results),
            "relinked_clips": sum(len(r.job.range.clips) for r in results if r.relinked)}
