"""The numbers of :mod:`gpen_video.quality.collect` summarised: per track and for the whole clip,
as a table (stdout), a dict (``--json``) and a PNG of per-track curves (``--plot``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gpen_video.quality.collect import TrackCurves, jitter_of


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


@dataclass(frozen=True)
class Summary:
    """One row: a track, or the whole clip (``track = None``)."""

    track: int | None
    frames: int  # face instances measured
    warp_source: float | None  # mean warping error of the source (RGB MSE, [0, 1] scale)
    warp_result: float | None
    warp_ratio: float | None  # result / source
    sharpness_ratio: float | None  # median over frames of result / source
    jitter_source: float | None  # mean landmark acceleration, inter-ocular units
    jitter_result: float | None
    jitter_ratio: float | None
    change_inside: float | None  # mean |result − source| inside the face (0–255)


def _summary(track: int | None, curves: list[TrackCurves]) -> Summary:
    pairs = [(a, b) for c in curves for a, b in zip(c.warp_source, c.warp_result)
             if a is not None and b is not None]
    ws = float(np.mean([a for a, _ in pairs])) if pairs else None
    wr = float(np.mean([b for _, b in pairs])) if pairs else None
    sharp = [b / a for c in curves for a, b in zip(c.sharp_source, c.sharp_result) if a > 0]
    js = [jitter_of(c.marks_source) for c in curves]
    jr = [jitter_of(c.marks_result) for c in curves]
    js_ok = [v for v in js if v is not None]
    jr_ok = [v for v in jr if v is not None]
    j_src = float(np.mean(js_ok)) if js_ok else None
    j_res = float(np.mean(jr_ok)) if jr_ok else None
    inside = [v for c in curves for v in c.change_inside]
    return Summary(track=track, frames=sum(len(c.frames) for c in curves), warp_source=ws,
                   warp_result=wr, warp_ratio=_ratio(wr, ws),
                   sharpness_ratio=float(np.median(sharp)) if sharp else None,
                   jitter_source=j_src, jitter_result=j_res, jitter_ratio=_ratio(j_res, j_src),
                   change_inside=float(np.mean(inside)) if inside else None)


@dataclass(frozen=True)
class QualityReport:
    source: str
    result: str
    frames: int
    tracks: tuple[Summary, ...]
    clip: Summary
    change_inside: float | None  # whole frames: mean |result − source| inside the faces (0–255)
    change_outside: float | None  # … and outside them
    curves: tuple[TrackCurves, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"source": self.source, "result": self.result, "frames": self.frames,
                "clip": {k: clean(v) for k, v in asdict(self.clip).items() if k != "track"},
                "change_inside": self.change_inside, "change_outside": self.change_outside,
                "tracks": [{k: clean(v) for k, v in asdict(t).items()} for t in self.tracks]}

    def text(self) -> str:
        def f(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        head = (f"{'track':>6} {'faces':>6} {'warp err src':>13} {'warp err res':>13} "
                f"{'ratio':>6} {'sharp':>6} {'jitter src':>10} {'jitter res':>10} {'ratio':>6} "
                f"{'|Δ| in':>7}")
        lines = [f"gpen-video measure: {self.result} against {self.source}, "
                 f"{self.frames} frames", head]
        for s in (*self.tracks, self.clip):
            name = "all" if s.track is None else str(s.track)
            lines.append(f"{name:>6} {s.frames:>6} {f(s.warp_source, '13.3e')} "
                         f"{f(s.warp_result, '13.3e')} {f(s.warp_ratio, '6.3f')} "
                         f"{f(s.sharpness_ratio, '6.3f')} {f(s.jitter_source, '10.4f')} "
                         f"{f(s.jitter_result, '10.4f')} {f(s.jitter_ratio, '6.3f')} "
                         f"{f(s.change_inside, '7.2f')}")
        lines.append(f"mean |result − source| (0–255): inside faces "
                     f"{f(self.change_inside, '.2f')}, outside {f(self.change_outside, '.2f')}")
        lines.append("ratios are result / source: warping error (Lai et al. 2018, flow on the "
                     "source, occlusion-checked), face-core sharpness, landmark jitter")
        return "\n".join(lines)


def build_report(source: Path, result: Path, walker: Any) -> QualityReport:
    curves = [walker.tracks[k] for k in sorted(walker.tracks)]
    return QualityReport(
        source=str(source), result=str(result), frames=walker.frames,
        tracks=tuple(_summary(c.track_id, [c]) for c in curves), clip=_summary(None, curves),
        change_inside=float(np.mean(walker.inside)) if walker.inside else None,
        change_outside=float(np.mean(walker.outside)) if walker.outside else None,
        curves=tuple(curves))


def plot(report: QualityReport, path: Path) -> Path:
    """Per-track curves over frames: warping error (source dashed, result solid), sharpness
    result/source, landmark jitter (source dashed, result solid). Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, c in enumerate(report.curves):
        col = colours[k % len(colours)]
        x = np.asarray(c.frames)
        nan = [np.nan if v is None else v for v in c.warp_source]
        axes[0].plot(x, nan, "--", color=col, alpha=0.7, label=f"track {c.track_id} source")
        axes[0].plot(x, [np.nan if v is None else v for v in c.warp_result], "-", color=col,
                     label=f"track {c.track_id} result")
        ratio = [b / a if a > 0 else np.nan for a, b in zip(c.sharp_source, c.sharp_result)]
        axes[1].plot(x, ratio, "-", color=col, label=f"track {c.track_id}")
        for marks, style, who in ((c.marks_source, "--", "source"),
                                  (c.marks_result, "-", "result")):
            jit = [np.nan if v is None else v for v in _jitter_series(marks)]
            axes[2].plot(x, jit, style, color=col, alpha=0.7 if who == "source" else 1.0,
                         label=f"track {c.track_id} {who}")
    axes[0].set_ylabel("warping error (MSE)")
    axes[0].set_title(f"{Path(report.result).name} vs {Path(report.source).name}: "
                      f"warping error ratio {_fmt(report.clip.warp_ratio)}, sharpness "
                      f"{_fmt(report.clip.sharpness_ratio)}, jitter {_fmt(report.clip.jitter_ratio)}")
    axes[1].set_ylabel("sharpness result / source")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[2].set_ylabel("landmark jitter (IOD)")
    axes[2].set_xlabel("frame")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _jitter_series(marks: list) -> list[float | None]:
    from gpen_video.quality.metrics import landmark_jitter

    return landmark_jitter(marks)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
