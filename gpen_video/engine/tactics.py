"""Tactics chosen by timing on the device, the way cuDNN and TensorRT choose kernels.

For every site of an :class:`~gpen_video.models.inference.InferenceGPEN` (each resampling
layer's blur, each modulated conv's modulation) the candidates compute the same thing in
different ways; which is fastest depends on the device, the precision, the batch and the layer's
size. :func:`choose_tactics` runs the network once to capture each site's real inputs, times every
candidate of every site on them (warm-up, then the median of ``repeats`` runs, the device
synchronised), keeps the fastest, and caches the plan with every time it measured, so the next
run on this device reuses it without timing (``gpen-video engine list`` shows it).

Cache: ``tactics-<size>px-<precision>-b<batch>-<device>-<key[:16]>.json`` in the engine folder,
written with its hash (:mod:`gpen_video.engine.artifact`).
The key covers what changes the timings or the candidates: the architecture, the device model
(CPU model and thread count; GPU name and compute capability), the precision, the batch, the torch
version and :data:`TACTICS_RECIPE`. Weights do not change timings and are not in it. Files are
written whole under the folder's lock; a damaged one is reported, removed and timed again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpen_video.engine.artifact import read_verified, remove_artifact, write_artifact
from gpen_video.engine.locking import lock_for
from gpen_video.models.inference import InferenceGPEN, TacticPlan

log = logging.getLogger("gpen_video.engine")

TACTICS_RECIPE = 1  # bumped when the candidates or their arithmetic change

# measure(run, site, tactic) -> seconds: how long ``run()`` takes (the default times it on the
# device; tests pass a table)
Measure = Callable[[Callable[[], Any], str, str], float]


@dataclass(frozen=True)
class TacticKey:
    """What a tactic plan was timed for."""

    config: str  # the architecture (GpenConfig as JSON)
    size: int
    device: str  # device model, e.g. "AMD EPYC 9R14 ×2 threads" or "NVIDIA H100 … sm90"
    precision: str
    batch: int
    torch: str

    def digest(self) -> str:
        record = dict(asdict(self), recipe=TACTICS_RECIPE)
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def filename(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", self.device).strip("-.").lower()[:48]
        return (f"tactics-{self.size}px-{self.precision}-b{self.batch}-{slug}-"
                f"{self.digest()[:16]}.json")


@dataclass(frozen=True)
class TimedPlan:
    """A plan and how it was come by."""

    plan: TacticPlan
    times_ms: dict  # site -> {tactic: ms}
    path: Path | None  # the cache file
    timed: bool  # True: timed now; False: read from the cache
    seconds: float  # time spent timing (0 when read)


def device_model(device: str) -> str:
    """The device's model as tactic and engine keys use it: the CPU's model name and the
    threads torch uses, or the GPU's name and compute capability."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        cc = "{}{}".format(*torch.cuda.get_device_capability(index))
        return f"{torch.cuda.get_device_name(index)} sm{cc}"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} x{torch.get_num_threads()} threads"


def key_for(form: InferenceGPEN, device: str, precision: str, batch: int) -> TacticKey:
    import torch

    return TacticKey(config=json.dumps(asdict(form.config), sort_keys=True),
                     size=form.config.size, device=device_model(device), precision=precision,
                     batch=int(batch), torch=torch.__version__.split("+")[0])


def device_timer(device: str, warmup: int = 1, repeats: int = 3) -> Measure:
    """The default :data:`Measure`: ``warmup`` untimed runs, then the median of ``repeats``
    timed ones, synchronising a CUDA device around each."""
    import torch

    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def measure(run: Callable[[], Any], site: str, tactic: str) -> float:
        for _ in range(warmup):
            run()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return measure


def site_inputs(form: InferenceGPEN, example: Any) -> dict[str, tuple]:
    """Each site's positional inputs during one forward of ``example`` (captured by hooks)."""
    import torch

    captured: dict[str, tuple] = {}
    handles = []
    for name, site in form.sites().items():
        def hook(module, args, name=name):
            captured.setdefault(name, tuple(a.detach() for a in args))
        handles.append(site.register_forward_pre_hook(hook))
    try:
        with torch.inference_mode():
            form(example)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def time_tactics(form: InferenceGPEN, example: Any, measure: Measure) -> tuple[TacticPlan, dict]:
    """Time every candidate of every site of ``form`` on the inputs ``example`` gives it; the
    plan of the fastest ones (ties: the first candidate, the plain arithmetic) and the times in
    ms. ``form`` is left with that plan applied."""
    import torch

    inputs = site_inputs(form, example)
    chosen: dict[str, str] = {}
    times: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for name, site in form.sites().items():
            args = inputs[name]
            row: dict[str, float] = {}
            for tactic in site.candidates():
                site.set_tactic(tactic)
                row[tactic] = float(measure(lambda: site(*args), name, tactic)) * 1e3
            best = min(row, key=lambda t: (row[t], site.candidates().index(t)))
            site.set_tactic(best)
            chosen[name] = best
            times[name] = {t: round(ms, 4) for t, ms in row.items()}
    plan = TacticPlan.of(chosen, "timed")
    form.apply_plan(plan)
    return plan, times


def choose_tactics(form: InferenceGPEN, device: str, precision: str, batch: int,
                   folder: Path | None, measure: Measure | None = None) -> TimedPlan:
    """The timed plan for ``form`` on ``device`` at ``precision`` and ``batch``: read from
    ``folder``'s cache, else timed now and cached there (``folder`` None: timed, not cached).
    ``form`` is left with the plan applied; it must be on ``device`` in ``precision``."""
    import torch

    key = key_for(form, device, precision, batch)
    path = Path(folder) / key.filename() if folder is not None else None
    cached = _read(path, form) if path is not None else None
    if cached is not None:
        return cached
    start = time.perf_counter()
    dtype = next(form.buffers()).dtype
    size = form.config.size
    generator = torch.Generator().manual_seed(0)
    example = (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1)
    example = example.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)

    def timed() -> tuple[TacticPlan, dict]:
        return time_tactics(form, example, measure or device_timer(device))

    if path is None:
        plan, times = timed()
        return TimedPlan(plan, times, None, True, time.perf_counter() - start)
    with lock_for(path):
        cached = _read(path, form)  # another process may have timed it while we waited
        if cached is not None:
            return cached
        plan, times = timed()
        seconds = time.perf_counter() - start
        record = {"key": asdict(key), "recipe": TACTICS_RECIPE, "plan": plan.as_dict(),
                  "times_ms": times, "timing_seconds": round(seconds, 3),
                  "timed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        write_artifact(path, json.dumps(record, indent=1, sort_keys=True).encode())
    log.info("tactics timed in %.1f s and cached: %s", seconds, path)
    return TimedPlan(plan, times, path, True, seconds)


def _read(path: Path, form: InferenceGPEN) -> TimedPlan | None:
    """The cached plan at ``path`` applied to ``form``, or None (missing; a damaged file is
    reported once and removed by :func:`gpen_video.engine.artifact.read_verified`, one that no
    longer fits the network likewise here, so it is timed again)."""
    data = read_verified(path)
    if data is None:
        return None
    try:
        record = json.loads(data)
        plan = TacticPlan.of(dict(record["plan"]), "timed")
        form.apply_plan(plan)
        return TimedPlan(plan, dict(record["times_ms"]), path, False, 0.0)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("the tactic cache %s does not fit this network (%s): removed, timing again",
                    path, type(exc).__name__)
        remove_artifact(path)
        return None


def describe_tactics(folder: Path) -> list[str]:
    """Lines for ``gpen-video engine list``: per cached plan, what it was timed for, and per
    site the chosen tactic with its time and the runner-up's."""
    lines = []
    for path in sorted(Path(folder).glob("tactics-*.json")):
        try:
            record = json.loads(path.read_text())
            key = record["key"]
            times = record["times_ms"]
            plan = record["plan"]
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"damaged  {path.name}  (unreadable; removed and re-timed on next use)")
            continue
        total = sum(times[s][plan[s]] for s in plan)
        plain = sum(next(iter(times[s].values())) for s in plan)
        lines.append(f"tactics  {path.name}  {key['size']}px {key['precision']} batch "
                     f"{key['batch']} on {key['device']}, torch {key['torch']}: sites "
                     f"{total:.2f} ms vs {plain:.2f} ms with the plain tactics")
        for site, tactic in plan.items():
            row = times[site]
            others = ", ".join(f"{t} {ms:.3g}" for t, ms in row.items() if t != tactic)
            lines.append(f"    {site:<10} {tactic:<22} {row[tactic]:.3g} ms  ({others})")
    return lines
