"""What ``gpen-video bench`` measures with, apart from the pipeline itself.

* :class:`RecordingClock` — the pipeline's :class:`~gpen_video.pipeline.StageClock` that also
  keeps every busy interval: per-frame latency (decoder hand-over → encoder accepted), and the
  time no stage was busy.
* :class:`PeakMemory` — peak RSS of this process over a span (Linux: ``VmHWM`` after resetting it
  through ``/proc/self/clear_refs``; elsewhere the process-lifetime peak, said so) and the CUDA
  allocator's peak.
* :func:`gpen_flops_per_face` — conv + matmul FLOPs of one forward (2 per multiply-add), counted
  by ``torch.utils.flop_counter`` on the meta device (GPEN-BFR-512: 276 GFLOP/face).
* :func:`device_peak_flops` — the device's peak at the precision (CPU: best rate of a large fp32
  3×3 convolution measured now; GPU: SMs × clock × the architecture's dense rate,
  :mod:`gpen_video.device.peak`), the "floor".
* :func:`synchronize`, :func:`summarize`, :func:`machine_info`, :func:`cpu_model`,
  :func:`load_average`, :func:`versions`, :func:`in_thread`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from gpen_video.pipeline import STAGES, StageClock

class RecordingClock(StageClock):
    """A :class:`StageClock` that keeps each stage's busy intervals (``perf_counter`` seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.intervals: dict[str, list[tuple[float, float]]] = {name: [] for name in STAGES}

    def add(self, stage: str, since: float) -> float:
        now = super().add(stage, since)
        self.intervals[stage].append((since, now))
        return now

    def busy_union(self) -> float:
        """Seconds during which at least one stage was busy."""
        spans = sorted(iv for ivs in self.intervals.values() for iv in ivs)
        total, end = 0.0, float("-inf")
        for a, b in spans:
            if b <= end:
                continue
            total += b - max(a, end)
            end = b
        return total

    def frame_latencies(self, frames: int) -> list[float]:
        """Per written frame: seconds from the decoder handing it over to the encoder accepting
        it. The decode stage records one interval per frame and the encode stage one per frame
        written (then one for closing the file), both in frame order; valid when every decoded
        frame is written (no frames before the range, as the benchmark runs)."""
        decoded = [b for _, b in self.intervals["decode"]]
        encoded = [b for _, b in self.intervals["encode"]]
        n = min(frames, len(decoded), len(encoded))
        return [encoded[i] - decoded[i] for i in range(n)]


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work before a clock read (no-op on the CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


class PeakMemory:
    """``with PeakMemory(device) as peak: …`` then ``peak.rss_mib``, ``peak.gpu_mib``."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.rss_mib: float | None = None
        self.rss_method = ""
        self.gpu_mib: float | None = None

    def __enter__(self) -> "PeakMemory":
        self._reset_ok = _reset_hwm()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _read_status_kib("VmHWM")
        if self._reset_ok and hwm is not None:
            self.rss_mib, self.rss_method = hwm / 1024, "VmHWM reset at start"
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.rss_mib = peak / (1024 * 1024 if sys.platform == "darwin" else 1024)
            self.rss_method = "process lifetime peak (ru_maxrss)"
        if self.device.startswith("cuda"):
            import torch

            self.gpu_mib = torch.cuda.max_memory_allocated(self.device) / 2**20


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _read_status_kib(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def gpen_config_of(model: Any) -> Any:
    """The :class:`~gpen_video.models.config.GpenConfig` of ``ModelOptions`` (registry name or
    checkpoint file); ``None`` when it cannot be told."""
    from gpen_video.models.weights import REGISTRY

    if model.checkpoint_path is None:
        spec = REGISTRY.get(model.name)
        return spec.gpen if spec is not None else None
    from gpen_video.models.load import infer_config, read_state_dict

    return infer_config(read_state_dict(Path(model.checkpoint_path)), model.checkpoint_path)


def gpen_flops_per_face(config: Any) -> float:
    """FLOPs of one face through GPEN ``config`` (conv + matmul, 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from gpen_video.models.gpen import GPEN

    with torch.device("meta"):
        model = GPEN(config).requires_grad_(False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, config.size, config.size, device="meta"))
    return float(counter.get_total_flops())


def cpu_conv_peak_flops(repeats: int = 8) -> float:
    """fp32 FLOP/s of a large 3×3 convolution (best of ``repeats``): the CPU's practical peak for
    GPEN's ops, measured now (so a loaded machine lowers it as it lowers everything else)."""
    import torch

    x = torch.rand(4, 256, 64, 64)
    w = torch.rand(256, 256, 3, 3)
    flops = 2 * 4 * 256 * 64 * 64 * 256 * 9
    best = float("inf")
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, w, padding=1)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.conv2d(x, w, padding=1)
            best = min(best, time.perf_counter() - start)
    return flops / best


def device_peak_flops(device: str, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s, how it was obtained) for the restorer's device and precision. GPUs: SM
    count × clock × the architecture's rate (:mod:`gpen_video.device.peak`; fp32 judged against
    TF32 when torch allows it); the CPU: a large fp32 convolution measured now."""
    if device.startswith("cuda"):
        from gpen_video.device.peak import cuda_peak

        peak = cuda_peak(device, precision)
        return peak.flops, peak.describe()
    if precision not in ("fp32", "auto", ""):
        return None, f"no CPU peak for {precision}"
    return cpu_conv_peak_flops(), "best rate of a 4×256×64×64 fp32 3×3 conv, measured now"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average(ndigits: int | None = 2, default: float | None = None) -> float | None:
    """1-minute load average, rounded to ``ndigits`` (``None``: as read); ``default`` where the
    platform has none."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return default
    return load if ndigits is None else round(load, ndigits)


def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a fresh thread, as the pipeline runs its torch work; its result,
    or its exception re-raised here. On a loaded machine torch (OpenMP) calls from the main
    thread were several times slower than from a worker thread (``benchmarks/RESULTS.md``, "Numbers behind design choices"),
    which would flatter the pipeline in a comparison."""
    import threading

    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                            "platform": platform.platform()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover - torch is a dependency
        info["gpus"] = []
    return info


def versions(backend: str = "") -> dict[str, str | None]:
    """Versions of what the timed path runs on."""
    import gpen_video

    out: dict[str, str | None] = {"gpen-video": gpen_video.__version__,
                                  "python": platform.python_version()}
    for dist in ("torch", "numpy", "av", "opencv-python", "opencv-python-headless", "facexlib"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import av

        out["ffmpeg"] = ".".join(str(v) for v in av.library_versions.get("libavcodec", ()))
        out["ffmpeg"] = f"libavcodec {out['ffmpeg']}"
    except Exception:  # noqa: BLE001 - informative only
        pass
    try:
        import torch

        out["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        pass
    for name, dist in (("onnxruntime", "onnxruntime"), ("tensorrt", "tensorrt")):
        if backend in (name, "auto"):
            try:
                out[name] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                out[name] = None
    return out


def summarize(values: list[float], digits: int = 4) -> dict[str, Any]:
    """Median, min, max (the spread) and the values themselves."""
    if not values:
        return {"median": None, "min": None, "max": None, "values": []}
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "values": [round(v, digits) for v in values]}


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0–100)."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
