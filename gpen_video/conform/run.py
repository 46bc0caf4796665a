"""``gpen-video conform TIMELINE OUTDIR`` as one library call: :func:`conform`.

Order (everything that can fail on bad input fails before anything is written):

1. read the timeline (:mod:`.timeline`), collect what every video clip shows (:mod:`.plan`;
   unsupported time effects fail here, named with their clip);
2. find every media file (all missing ones in one error; ``--search-path``) and probe them
   (:mod:`.media`); turn the clips' frames into file frames with handles and merge them into
   ranges (rate and length disagreements fail here); refuse an OUTDIR inside a media folder;
3. name each range's output and job (:mod:`.render`), sort out what an earlier run of the same
   conform finished (reused) and refuse to replace a file that is not one of those (without
   ``-y``); ``--dry-run`` stops here with the report;
4. check the output codecs and the weights;
5. create OUTDIR, render, relink, write the restored timeline(s) and the report.

If it stops after OUTDIR was created and before any range finished, the folder it created is
removed again: a failed conform leaves nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from gpen_video.conform import media as media_mod
from gpen_video.conform import plan, relink, render, report, timeline
from gpen_video.options import ConformOptions


def conform(options: ConformOptions, *, stdout: TextIO | None = None,
            stderr: TextIO | None = None) -> report.ConformReport:
    """Restore what ``options.timeline`` uses into ``options.outdir`` (module docstring).

    Raises:
        UsageError: no adapter for the timeline's type (names the package), an EDL without a
            rate, an unsupported time effect, a bad option, OUTDIR inside a media folder.
        InputError: the timeline cannot be read, media files are missing (all listed), a file
            disagrees with the timeline (rate, length).
        OutputError: an output exists that this conform did not finish (without overwrite).
        what a single run raises while rendering (WeightsError, TransientError, …);
        KeyboardInterrupt: finished ranges stay for the rerun, nothing partial is left.
    """
    t0 = time.perf_counter()
    tl_path = Path(options.timeline)
    adapter = timeline.adapter_for(tl_path)
    tl = timeline.read_timeline(tl_path, options.rate)
    uses, skipped = plan.collect_uses(tl)
    found = media_mod.locate(uses, tl_path.resolve().parent, list(options.search_paths))
    uses, found = media_mod.by_file(uses, found)
    media = media_mod.probe(found, uses)
    facts = {key: m.facts for key, m in media.items()}
    file_uses = plan.file_uses(uses, facts, options.handles)
    ranges = plan.merge_ranges(file_uses, {u.index: u.media for u in uses}, options.merge_gap)
    outdir = Path(options.outdir)
    media_mod.check_outdir(outdir, list(media.values()))
    jobs = render.plan_jobs(ranges, media, outdir, options.run)
    manifest = render.Manifest(outdir / f"{tl_path.stem}{render.MANIFEST_SUFFIX}")
    results = render.sort_out(jobs, manifest, options.run.overwrite)
    if options.dry_run:  # what a run would render now (ranges finished before: reused)
        return report.build(tl_path, outdir, True, uses, skipped, file_uses, results, media)
    created = not outdir.exists()
    finished = [False]
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        render.check_jobs(results)
        _render(options, results, manifest, finished, stdout, stderr)
        relink.relink(uses, results)
        written = relink.write_restored(tl, tl_path, outdir, adapter, options.rate)
    finally:
        if created and not finished[0]:
            _remove_if_empty(outdir)
    out = report.build(tl_path, outdir, False, uses, skipped, file_uses, results, media)
    out.written = [str(p) for p in written]
    out.totals["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _render(options: ConformOptions, results: list[render.RangeResult],
            manifest: render.Manifest, finished: list[bool], stdout: TextIO | None,
            stderr: TextIO | None) -> None:
    from gpen_video.progress import Progress

    total = sum(r.job.range.count for r in results if r.status == "planned")
    progress = Progress(options.run.progress, total, stdout, stderr,
                        label="gpen-video conform")

    def on_done(result: render.RangeResult) -> None:
        manifest.record(result)
        finished[0] = True
        job = result.job
        faces = "" if result.faces is None else f", {result.faces} faces"
        progress.event("range", f"{job.output.name} ({job.media.path.name} frames "
                       f"{job.range.first}-{job.range.last}): {result.status}{faces}",
                       output=job.output.name, status=result.status, faces=result.faces)

    try:
        render.render(results, options.run, options.workers, progress, on_done, options.farm)
    finally:
        progress.close()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass

