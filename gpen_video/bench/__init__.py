"""``gpen-video bench``: the real pipeline timed honestly — fps per GPU and per stage.

``run_bench(BenchOptions(run=RunOptions(...), ...)) -> dict`` runs :func:`gpen_video.pipeline.run`
on a clip (given, or synthesised from a face photo: 1080p/4K, 1 or 4 moving faces) after a
warm-up, ``repeats`` times in two ways — ``overlap`` (the product's threads: end-to-end fps,
faces/s, frame latency, peak memory) and ``serial`` (one stage at a time: a per-stage breakdown
that adds up to the wall time) — and returns medians with their spread, the device, versions and
the fraction of the model's compute floor. :func:`format_report` prints it;
:func:`plot_stages` draws per-stage bars. See :mod:`gpen_video.bench.core` for exactly what is
timed.
"""

from gpen_video.bench.core import plan_devices, run_bench
from gpen_video.bench.report import format_report, plot_report, plot_stages

__all__ = ["format_report", "plan_devices", "plot_report", "plot_stages", "run_bench"]
