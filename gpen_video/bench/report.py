"""The benchmark report as a text table (what ``gpen-video bench`` prints) and a PNG plot.

Both are drawn from the report dict that ``--json`` writes, so the printed numbers are the JSON's
numbers (medians over the repeats, min–max as the spread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpen_video.pipeline import STAGES

STAGE_LABELS = {"decode": "decode", "detect": "detect", "track": "track/smooth",
                "align": "align/warp", "restore": "restore (GPEN)", "temporal": "temporal",
                "paste": "paste", "encode": "encode"}


def number(value: Any, fmt: str = ".3f", none: str = "—") -> str:
    """``value`` in ``fmt``, or ``none`` where it was not measured (the reports' one number
    format)."""
    return none if value is None else format(value, fmt)


def _spread(s: dict, fmt: str = ".3f") -> str:
    if s.get("min") is None:
        return "—"
    return f"{format(s['min'], fmt)}–{format(s['max'], fmt)}"


def _pct(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return ""
    return f"{100 * part / whole:5.1f} %"


def _table(rows: list[list[str]], right: set[int], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                 enumerate(zip(r, widths))]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _floor(w: dict, key: str) -> str:
    ov = w.get("overlap") or w.get("serial")
    achieved = ov[key]["median"] if ov and key in ov else None
    peak = w.get("peak_gflop_s")
    if achieved is None or not peak:
        return "—"
    return f"{100 * achieved / peak:.2f} %"


def on_gpu(w: dict) -> bool:
    """Whether worker ``w`` ran on a GPU (its GPU-only figures are shown only then)."""
    return str(w.get("device", "")).startswith("cuda")


def _forward_note(w: dict, batch: int) -> str:
    """Why the restorer ran smaller forward passes than ``--batch``, if it did."""
    forward = w.get("max_forward_batch")
    if forward is None or forward >= batch:
        return ""
    if forward == 1 and not on_gpu(w):
        return (" (run as passes of 1 face: on a CPU one face per forward pass is faster per "
                "face than a batch, benchmarks/RESULTS.md; --batch still gathers the faces of "
                "several frames)")
    return (f" (forward passes of ≤ {forward}: the largest batch this backend's network takes "
            "here, --max-batch of a run)")


def format_worker(scene: dict, w: dict, config: dict) -> list[str]:
    """The report's lines for one worker: setup, end-to-end table, compute floor, stages."""
    lines = []
    ov, se = w.get("overlap"), w.get("serial")
    head = ov or se
    lines.append(f"  device    {w['device']}: {w['device_name']}")
    model = config["model"] + (" (random weights)" if config.get("random_weights") else "")
    flop = (f", {w['gflop_per_face']:.1f} GFLOP/face" if w.get("gflop_per_face") is not None
            else "")
    split = _forward_note(w, config["batch"])
    lines.append(f"  restorer  {w['restorer']}, batch {config['batch']}{split} · {model}{flop}")
    runtime = f"{w['detector_runtime']}, " if w.get("detector_runtime") else ""
    lines.append(f"  detector  {config['detector']} ({runtime}batch {config['detector_batch']}, "
                 f"{config.get('detect_mode', 'full')} detection) · "
                 f"temporal {config['temporal']} · warm-up {w['warmup_frames']} frames, untimed")
    if w.get("faces_from"):
        lines.append(f"  faces     read from an analysis made once "
                     f"({number(w.get('analysis_seconds'), '.1f')} s, untimed): the timed runs "
                     "detect nothing")
    lines.append(f"  timed     {head['frames']} frames, {head['faces']} faces per run × "
                 f"{len(head['runs'])} repeat(s) per mode; medians, spread = min–max")
    lines.append("")
    if ov:
        rows = [["end-to-end (overlap: the product's threads)", "median", "min–max"],
                ["fps", number(ov["fps"]["median"]), _spread(ov["fps"])],
                ["faces/s", number(ov["faces_per_s"]["median"]), _spread(ov["faces_per_s"])],
                ["frame latency p50 (ms)", number(ov["latency_p50_ms"]["median"], ".0f"),
                 _spread(ov["latency_p50_ms"], ".0f")],
                ["frame latency p95 (ms)", number(ov["latency_p95_ms"]["median"], ".0f"),
                 _spread(ov["latency_p95_ms"], ".0f")],
                ["peak RSS (MiB)", number(ov["peak_rss_mib"]["median"], ".0f"),
                 _spread(ov["peak_rss_mib"], ".0f")],
                ["setup per run, not in fps (s)", number(ov["setup_seconds"]["median"]),
                 _spread(ov["setup_seconds"])]]
        if on_gpu(w):  # figures only a GPU run has
            rows += [["peak GPU memory (MiB)", number(ov["peak_gpu_mib"]["median"], ".0f"),
                      _spread(ov["peak_gpu_mib"], ".0f")]] + _device_rows(ov)
        lines += _table(rows, {1, 2})
    peak = w.get("peak_gflop_s")
    if w.get("gflop_per_face") is not None:
        lines.append(f"  compute floor: {w['gflop_per_face']:.1f} GFLOP/face at "
                     f"{number(peak, '.1f')} GFLOP/s ({w['peak_method']}) → end-to-end "
                     f"{_floor(w, 'gflop_s')}, restore stage {_floor(w, 'restore_gflop_s')} "
                     "of the floor")
    else:
        lines.append("  compute floor: — (no network: identity restorer)")
    lines.append("")
    return lines + _stage_table(ov, se) + _cpu_lines(ov, se)


def _cpu_lines(ov: dict | None, se: dict | None) -> list[str]:
    """Host CPU time per frame and the CPUs it kept busy, per mode (runs that measured it): on
    a GPU, how close the host comes to being the limit."""
    parts = []
    for label, mode in (("overlap", ov), ("serial", se)):
        ms = ((mode or {}).get("cpu_ms_per_frame") or {}).get("median")
        busy = ((mode or {}).get("cpu_cores_busy") or {}).get("median")
        if ms is not None and busy is not None:
            parts.append(f"{label} {ms:.0f} ms per frame, {busy:.2f} CPUs busy on average")
    if not parts:
        return []
    return [f"  host CPU (every thread of the process, setup included): {'; '.join(parts)}"]


def _stage_table(ov: dict | None, se: dict | None) -> list[str]:
    """Per-stage busy (overlap) and serial times, with their footnotes."""
    lines: list[str] = []
    header = ["per-stage time (s)"]
    if ov:
        header += ["overlap: busy", "% wall"]
    if se:
        header += ["serial", "% wall", "min–max"]
    rows = [header]
    for stage in STAGES:
        row = [STAGE_LABELS[stage]]
        if ov:
            v = ov["stage_seconds"][stage]["median"]
            row += [number(v), _pct(v, ov["seconds"]["median"])]
        if se:
            s = se["stage_seconds"][stage]
            row += [number(s["median"]), _pct(s["median"], se["seconds"]["median"]), _spread(s)]
        rows.append(row)
    tail = [("idle ¹ / other ²", "idle_seconds", "other_seconds"),
            ("Σ stages", "stage_sum", "stage_sum"),
            ("wall ³", "seconds", "seconds")]
    for label, okey, skey in tail:
        row = [label]
        if ov:
            v = ov[okey]["median"]
            row += [number(v), _pct(v, ov["seconds"]["median"])]
        if se:
            s = se[skey]
            row += [number(s["median"]), _pct(s["median"], se["seconds"]["median"]), _spread(s)]
        rows.append(row)
    _device_column(rows, ov)
    right = set(range(1, len(rows[0])))
    lines += _table(rows, right)
    notes = []
    if ov:
        notes.append("¹ overlap: time no stage was busy; stages overlap, so busy times add up "
                     "to more than the wall time")
    if se:
        notes.append("² serial (one stage at a time, same pipeline): wall − Σ stages = queue "
                     "hand-overs and untimed code")
    notes.append("³ first frame decoded → output file closed (opening the files: setup)")
    lines += ["  " + n for n in notes]
    if se:
        lines.append(f"  serial: Σ stages / wall = {number(se['sum_over_wall']['median'], '.3f')} "
                     f"(min–max {_spread(se['sum_over_wall'])}); serial fps "
                     f"{number(se['fps']['median'])} (stages one at a time, for the breakdown)")
    return lines


def _device_rows(ov: dict) -> list[list[str]]:
    """Host syncs per frame and the GPU busy fraction, when the run measured them."""
    rows = []
    for label, key, fmt in (("host syncs per frame (restore+composite)",
                             "host_syncs_per_frame", ".2f"),
                            ("host syncs per frame (detection)", "detect_syncs_per_frame", ".2f"),
                            ("GPU busy fraction (CUDA events)", "device_busy", ".3f")):
        if (ov.get(key) or {}).get("median") is not None:
            rows.append([label, number(ov[key]["median"], fmt), _spread(ov[key], fmt)])
    return rows


def _device_column(rows: list[list[str]], ov: dict | None) -> None:
    """Append the CUDA-event device seconds per stage (median) to the stage table, if measured
    (stage rows follow the header in :data:`STAGES` order; the tail rows get blanks)."""
    device = (ov or {}).get("device_stage_seconds") or {}
    if not any((device.get(s) or {}).get("median") is not None for s in STAGES):
        return
    rows[0].append("GPU (events)")
    for i, row in enumerate(rows[1:]):
        stage = STAGES[i] if i < len(STAGES) else None
        value = (device.get(stage) or {}).get("median") if stage else None
        row.append(number(value) if value is not None else "")


def format_report(report: dict) -> str:
    """The whole report as text."""
    c = report["config"]
    m = report["machine"]
    v = report["versions"]
    load = report.get("load_avg_1min", {})
    vers = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    lines = [f"gpen-video bench · {c['device_note']} · {m['logical_cpus']} logical CPUs "
             f"({m['cpu']}) · 1-min load average {load.get('before')} → {load.get('after')}",
             f"versions: {vers}"]
    for scene in report["scenes"]:
        lines += ["", f"== {scene['description']} · {scene['frames']} frames · "
                      f"{Path(scene['clip']).name}"]
        for w in scene["workers"]:
            lines += format_worker(scene, w, c)
            if w.get("quality"):
                lines.append(format_quality(w["quality"]))
        if len(scene["workers"]) > 1:
            rows = [["fps per worker", "overlap", "serial"]]
            for w in scene["workers"]:
                rows.append([w["device"], number((w.get("overlap") or {}).get("fps", {})
                                             .get("median")),
                             number((w.get("serial") or {}).get("fps", {}).get("median"))])
            tot = scene["total_fps"]
            rows.append(["total (all frames ÷ slowest wall)",
                         number(tot.get("overlap", {}).get("median")),
                         number(tot.get("serial", {}).get("median"))])
            lines += [""] + _table(rows, {1, 2})
    lines += ["", f"bench took {report['total_seconds']:.1f} s in all"]
    return "\n".join(lines)


def format_quality(q: dict) -> str:
    """One line of ``gpen-video measure``'s clip numbers (ratios are output / clip)."""
    clip = q["clip"]
    return (f"  quality (gpen-video measure, output / clip): warping error "
            f"{number(clip.get('warp_ratio'))}, face-core sharpness "
            f"{number(clip.get('sharpness_ratio'))}, landmark jitter "
            f"{number(clip.get('jitter_ratio'))}; mean |Δ| (0–255) inside faces "
            f"{number(q.get('change_inside'), '.2f')}, outside "
            f"{number(q.get('change_outside'), '.2f')}")


def median_run(runs: list[dict]) -> dict:
    """The run whose wall time is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return ordered[(len(ordered) - 1) // 2]


def stage_ms_per_frame(run: dict) -> dict[str, float]:
    """One run's seconds per stage as milliseconds per frame, with "other" (wall − Σ stages)
    when positive, so that the bars of a serial (or single-threaded) run add up to its wall."""
    frames = max(1, run["frames"])
    out = {s: 1000 * v / frames for s, v in run["stage_seconds"].items()}
    other = run["seconds"] - sum(run["stage_seconds"].values())
    if other > 0:
        out["other"] = 1000 * other / frames
    return out


def plot_report(report: dict, path: Path) -> Path:
    """Per-stage bars of every scene and worker of a report: the serial breakdown (it adds up),
    with the overlapped run's wall time per frame marked."""
    entries = []
    for scene in report["scenes"]:
        for w in scene["workers"]:
            se, ov = w.get("serial"), w.get("overlap")
            run = median_run((se or ov)["runs"])
            marks = []
            if ov:
                wall = 1000 * ov["seconds"]["median"] / max(1, ov["frames"])
                marks.append(("overlap wall", wall))
            if se:
                marks.append(("serial wall", 1000 * run["seconds"] / max(1, run["frames"])))
            label = f"{scene['scene']} · {w['device']}"
            entries.append((label, stage_ms_per_frame(run), marks))
    c = report["config"]
    title = (f"gpen-video bench: {c['model']}{' (random weights)' if c['random_weights'] else ''}"
             f", {c['backend']}, batch {c['batch']} — time per frame by stage, median run "
             f"({'serial breakdown' if 'serial' in c['modes'] else 'overlapping busy time'})")
    return plot_stages(entries, path, title)


def plot_stages(entries: list[tuple[str, dict[str, float], list[tuple[str, float]]]],
                path: Path, title: str) -> Path:
    """Horizontal stacked bars, one per entry ``(label, {stage: ms per frame}, marks)``; each mark
    ``(name, ms per frame)`` is drawn as a tick on the bar (e.g. the measured wall time). Needs
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - optional
        from gpen_video.errors import UsageError

        raise UsageError("the plot needs matplotlib (pip install matplotlib)") from exc
    keys = (*STAGES, "other")
    stages = [s for s in keys if any(e[1].get(s, 0) > 0 for e in entries)]
    palette = ("#4e79a7", "#f28e2b", "#b07aa1", "#76b7b2", "#e15759", "#edc948", "#59a14f",
               "#9c755f", "#bab0ac")
    colors = dict(zip(keys, palette))
    longest = max([sum(e[1].values()) for e in entries] +
                  [m for e in entries for _, m in e[2]] + [1e-9])
    fig, ax = plt.subplots(figsize=(11, 1.6 + 0.9 * max(2, len(entries))), dpi=120)
    y = [1.4 * i for i in range(len(entries))][::-1]
    for yi, (_, ms, marks) in zip(y, entries):
        left = 0.0
        for s in stages:
            value = ms.get(s, 0.0)
            if value <= 0:
                continue
            ax.barh(yi, value, left=left, color=colors[s], edgecolor="white", height=0.55)
            if value >= 0.07 * longest:
                ax.text(left + value / 2, yi, f"{value:.0f}", ha="center", va="center",
                        fontsize=8, color="white", fontweight="bold")
            left += value
        for k, (name, value) in enumerate(marks):
            ax.plot([value, value], [yi - 0.36, yi + 0.36], color="black",
                    lw=1.8, ls="-" if k == 0 else ":")
            ax.text(value, yi + 0.38 if k == 0 else yi - 0.38, f"{name} {value:.0f}",
                    ha="center", va="bottom" if k == 0 else "top", fontsize=7.5)
    ax.set_yticks(y, [e[0] for e in entries])
    ax.set_ylim(-0.9, 1.4 * (len(entries) - 1) + 0.9)
    ax.set_xlim(0, longest * 1.08)
    ax.set_xlabel("milliseconds per frame")
    ax.set_title(title, fontsize=9.5)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[s]) for s in stages]
    ax.legend(handles, [STAGE_LABELS.get(s, "other (hand-overs, untimed)") for s in stages],
              fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
