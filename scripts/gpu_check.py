"""The checks of ``scripts/gpu_check.sh`` that are Python: one part per call, results merged into
one JSON file (``$OUT/checks.json``).

    python scripts/gpu_check.py capture   # CUDA-graph capture vs other threads' CUDA work
    python scripts/gpu_check.py gate      # fp16/bf16/TF32 vs strict fp32, and the torch gate
    python scripts/gpu_check.py profile   # where GPEN-BFR-512 fp16 batch 8 spends device time
    python scripts/gpu_check.py nvenc     # can PyAV's h264_nvenc encode here (a GPU encoder)?
    python scripts/gpu_check.py engines   # plain vs inference form (timed tactics) vs compiled
                                          # engine, ms/face beside the roofline's floor
    python scripts/gpu_check.py prepare   # (CPU side) copy the test data the run needs

Every check is a result, also when it fails: the exception is recorded and the next one runs.
Networks have random weights (the real architectures): numbers about speed and numerical
agreement, not about restoration quality.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("OUT") or "/tmp/gpen-gpu-check")
PREPARED = REPO / ".gpucheck" / "testdata"  # git-ignored; carried to the GPU machine
NEEDED = {  # what the GPU steps read from the shared test data
    "images": ("gpen_ffhq-10_00004.png",),  # the bench's --face (the gate reads package data)
    "weights": ("detection_mobilenet0.25_Final.pth",),
    "videos": ("liveportrait_d11.mp4",),
}


def record(part: str, fn) -> dict:
    """Run ``fn`` and merge its result (or its error) into ``$OUT/checks.json`` under ``part``."""
    start = time.time()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - a failed check is a result
        result = {"error": f"{type(exc).__name__}: {exc}"[:800],
                  "traceback": traceback.format_exc()[-2500:]}
    result["seconds"] = round(time.time() - start, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "checks.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged[part] = result
    path.write_text(json.dumps(merged, indent=1, default=str))
    print(f"== {part}: {json.dumps(result, default=str)[:3000]}", flush=True)
    return result


def _net(size: int, seed: int = 0):
    from gpen_video.models.load import build_gpen
    from gpen_video.models.weights import REGISTRY

    return build_gpen(REGISTRY[f"GPEN-BFR-{size}"].gpen, seed=seed)


# ------------------------------------------------------------------ capture
def capture() -> dict:
    """The restore thread replays graphs captured at load while another thread allocates,
    launches and downloads on CUDA (the detector's and compositor's situation); then, for
    comparison, what a capture does when it is made while such a thread runs (the old lazy
    capture)."""
    import torch

    from gpen_video.backends.cuda_graphs import GraphedForward, plan_batch_sizes
    from gpen_video.backends.torch_backend import TorchRestorer, _first_output
    from gpen_video.options import RestoreOptions

    out = {}
    r = TorchRestorer(_net(256), RestoreOptions(device="cuda", precision="fp16", batch=8),
                      size=256, quality_gate=False).load()
    x = torch.rand(8, 3, 256, 256, device="cuda")
    alone = {n: r.restore(x[:n]) for n in range(1, 9)}
    with _busy_thread() as other:
        during = {n: r.restore(x[:n]) for n in list(range(1, 9)) * 3}
        torch.cuda.synchronize()
    out["captured_at_load"] = {
        "graph_sizes": list(r.graph_sizes), "disabled": r._forward.disabled,
        "other_thread_errors": other["errors"][:3], "other_iterations": other["n"],
        "max_abs_diff_vs_alone": max(float((during[n] - alone[n]).abs().max()) for n in alone)}
    fn = _first_output(r._net)
    r.close()
    with torch.inference_mode(), _busy_thread() as other:
        time.sleep(0.2)
        late = GraphedForward(fn, plan_batch_sizes(4))
        example = torch.zeros(1, 3, 256, 256, device="cuda", dtype=torch.float16)
        error = None
        try:
            late.prepare(example.contiguous(memory_format=torch.channels_last))
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    out["captured_while_busy"] = {"captured": late.captured, "disabled": late.disabled,
                                  "error": error, "other_thread_errors": other["errors"][:3]}
    return out


class _busy_thread:
    """A thread doing CUDA work (new allocation sizes, kernels, a download) until the block ends."""

    def __enter__(self) -> dict:
        import torch

        self.state = {"errors": [], "n": 0}
        self.stop = threading.Event()

        def body() -> None:
            try:
                while not self.stop.is_set():
                    n = self.state["n"]
                    a = torch.empty((1 + n % 61) * 65536 + n, device="cuda").normal_()
                    a[:8].cpu()
                    self.state["n"] += 1
            except Exception as exc:  # noqa: BLE001
                self.state["errors"].append(f"{type(exc).__name__}: {str(exc)[:200]}")

        self.thread = threading.Thread(target=body)
        self.thread.start()
        return self.state

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


# ------------------------------------------------------------------ gate
def gate() -> dict:
    """Worst-face PSNR and max error of fp16, bf16 and TF32 against strict fp32 on the gate's
    real crops (GPEN-BFR-256 and -512, random weights), and what the torch gate chooses."""
    import tempfile

    import numpy as np
    import torch

    from gpen_video.backends.torch_backend import TorchRestorer
    from gpen_video.engine.gate import compare, load_gate_faces, strict_fp32
    from gpen_video.options import RestoreOptions

    out = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for size in (256, 512):
        net = _net(size)
        faces = load_gate_faces(size)

        def make(precision: str, n=net) -> TorchRestorer:
            options = RestoreOptions(device="cuda", precision=precision, cuda_graphs=False)
            return TorchRestorer(copy.deepcopy(n), options, size=size, quality_gate=False)

        with strict_fp32(), make("fp32") as r:
            ref = r.restore(faces)
        rows = {}
        for label, precision in (("tf32", "fp32"), ("fp16", "fp16"), ("bf16", "bf16")):
            with make(precision) as r:
                rep = compare(np.asarray(r.restore(faces)), ref)
            rows[label] = {"worst_psnr_db": round(rep.psnr_db, 2), "passed": rep.passed,
                           "per_face_db": [round(v, 1) for v in rep.psnr_per_image_db],
                           "max_abs_255": round(rep.max_abs_error_8bit, 2)}
        with tempfile.TemporaryDirectory() as folder:
            options = RestoreOptions(device="cuda", precision="fp16", engine_dir=Path(folder))
            with TorchRestorer(copy.deepcopy(net), options, size=size) as r:
                rows["torch_gate_fp16"] = {"chosen": r.precision, "line": r.gate.line,
                                           "gated_now": list(r.gate.gated_now)}
        out[f"GPEN-BFR-{size}"] = rows
        del net
        torch.cuda.empty_cache()
    return out


# ------------------------------------------------------------------ profile
def profile_forward(net, batch: int, size: int, device: str, dtype, repeats: int = 3,
                    rows: int = 25) -> tuple[str, dict]:
    """torch.profiler over ``repeats`` forwards of ``net`` (already on ``device`` in ``dtype``,
    channels_last, eager) at ``batch`` faces: the op table by self time on the device (the
    CPU when ``device`` is ``cpu``), and a summary — time per face, the ops with their shares,
    and the share of convolutions (cuDNN/GEMM kernels) against everything around them."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    on_cuda = device.startswith("cuda")
    x = torch.rand(batch, 3, size, size, device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    with torch.inference_mode():
        net(x)  # warm-up: cuDNN's algorithm choice, allocations
        if on_cuda:
            torch.cuda.synchronize()
        with profile(activities=activities, record_shapes=True) as prof:
            for _ in range(repeats):
                net(x)
            if on_cuda:
                torch.cuda.synchronize()
    per_op, per_shape = prof.key_averages(), prof.key_averages(group_by_input_shape=True)
    key, note = ("self_device_time_total" if on_cuda else "self_cpu_time_total"), None
    if not any(getattr(a, key) > 0 for a in per_op):  # no device times (no CUPTI): say so
        key, note = "self_cpu_time_total", "no device times recorded: host (CPU) times instead"

    def ranked(averages) -> list:
        return sorted((a for a in averages if getattr(a, key) > 0),
                      key=lambda a: getattr(a, key), reverse=True)

    def is_conv(name: str) -> bool:
        return any(word in name for word in ("conv", "cudnn", "mm", "gemm"))

    ops, by_shape = ranked(per_op), ranked(per_shape)
    total_us = sum(getattr(a, key) for a in ops)
    summary = {
        "device": device, "dtype": str(dtype).replace("torch.", ""), "batch": batch,
        "size": size, "repeats": repeats, "time_key": key, "note": note,
        "ms_per_face": round(total_us / 1000 / repeats / batch, 3),
        "conv_share": round(sum(getattr(a, key) for a in ops if is_conv(a.key)) / total_us, 3),
        "ops": [{"op": a.key, "share": round(getattr(a, key) / total_us, 3), "calls": a.count}
                for a in ops[:15]],
        "ops_by_shape": [{"op": a.key, "shapes": str(a.input_shapes)[:160],
                          "share": round(getattr(a, key) / total_us, 3), "calls": a.count}
                         for a in by_shape[:12]],
    }
    table = per_op.table(sort_by=key, row_limit=rows)
    shapes = per_shape.table(sort_by=key, row_limit=rows)
    return f"{table}\n\nby input shape:\n{shapes}\n", summary


def profile_() -> dict:
    """Where GPEN-BFR-512's fp16 forward at batch 8 spends device time (eager, channels_last,
    the kernels a CUDA-graph replay runs); the tables are printed (``$OUT/log.txt``: the check
    brings back at most 8 files), the summary goes to ``checks.json``."""
    import torch

    from gpen_video.backends.torch_backend import to_channels_last

    net = to_channels_last(_net(512).to("cuda", torch.float16).eval())
    text, summary = profile_forward(net, batch=8, size=512, device="cuda", dtype=torch.float16)
    print(text, flush=True)
    return summary


# ------------------------------------------------------------------ nvenc
def nvenc(frames: int = 48) -> dict:
    """Whether PyAV's FFmpeg can encode 1080p H.264 on this GPU (``h264_nvenc``), and how fast:
    x264 stays on the CPU, a GPU's encoder engines would not. The error is the answer where the
    GPU has none."""
    import fractions
    import io

    import av
    import numpy as np

    out = {"listed": "h264_nvenc" in av.codecs_available}
    image = (np.arange(1080 * 1920 * 3, dtype=np.uint32) % 251).astype(np.uint8)
    image = image.reshape(1080, 1920, 3)
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format="mp4") as container:
            stream = container.add_stream("h264_nvenc", rate=25)
            stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(np.roll(image, 8 * i, axis=1), format="rgb24")
                frame.pts, frame.time_base = i, fractions.Fraction(1, 25)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # no engine, driver or codec
        return {**out, "works": False, "why": f"{type(exc).__name__}: {exc}"[:300]}
    return {**out, "works": True, "frames": frames, "fps": round(frames / seconds, 1),
            "cpu_ms_per_frame": round(1000 * cpu / frames, 1), "bytes": buffer.tell()}


# ------------------------------------------------------------------ compile
def engines(device: str = "cuda", cases=((512, 8), (512, 32), (256, 32)),
            precision: str = "fp16", compile_: bool = True, repeats: int = 10) -> dict:
    """GPEN's forms on this GPU: the plain module eagerly (the torch backend before the inference
    form), the inference form with tactics timed here, and its Inductor-compiled engine (the
    path ``--backend auto`` takes without TensorRT), each in ms per face, beside the roofline's
    modeled floor (gpen_video.bench.roofline) and measured ÷ modeled. The compiled engines are
    built into the default engine folder, so the bench steps after this one reuse them."""
    import torch

    from gpen_video.backends.torch_backend import TorchRestorer, to_channels_last
    from gpen_video.bench.roofline import MODELED_GPUS, modeled_seconds, trace_forward
    from gpen_video.options import ModelOptions, RestoreOptions

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    cuda = device.startswith("cuda")
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    gpu = MODELED_GPUS["H200" if "H200" in name else "H100"]
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed(fn, x) -> float:
        fn(x)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            sync()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times) / x.shape[0]

    rows = []
    for size, batch in cases:
        plain = to_channels_last(_net(size).to(device, dtype).eval())
        x = torch.rand(batch, 3, size, size, device=device)
        xm = (x * 2 - 1).to(dtype).contiguous(memory_format=torch.channels_last)
        row = {"size": size, "batch": batch, "precision": precision}
        with torch.inference_mode():
            row["plain_eager_ms"] = timed(plain, xm)
        for label, compiled in (("form_eager", False), ("compiled", True)):
            if compiled and not compile_:
                continue
            options = RestoreOptions(backend="torch", device=device, precision=precision,
                                     batch=batch, max_batch=batch, cuda_graphs=cuda,
                                     compile="on" if compiled else "off", tactics="timed")
            start = time.perf_counter()
            restorer = TorchRestorer(ModelOptions(name=f"GPEN-BFR-{size}", random_weights=True),
                                     options, quality_gate=False).load()
            row[f"{label}_load_seconds"] = round(time.perf_counter() - start, 1)
            row[f"{label}_ms"] = timed(lambda b: restorer.restore(b, trusted_range=True), x)
            row[f"{label}_describe"] = restorer.describe()
            if restorer.tactics is not None:
                row["tactics"] = restorer.tactics.plan.as_dict()
            if compiled and restorer.engine is not None:
                row["build_seconds"] = round(restorer.engine.build_seconds, 1)
        meta_plain = copy.deepcopy(plain).to("meta")
        trace = trace_forward(meta_plain, torch.empty(batch, 3, size, size, device="meta",
                                                      dtype=dtype))
        peak = gpu.peak(precision)
        for model, fused in (("eager", False), ("compiled", True)):
            row[f"modeled_{model}_ms"] = 1000 * modeled_seconds(trace, peak, gpu.bandwidth,
                                                                fused) / batch
        row["measured_over_modeled"] = {
            "plain_eager": row["plain_eager_ms"] / row["modeled_eager_ms"],
            **({"compiled": row["compiled_ms"] / row["modeled_compiled_ms"]}
               if "compiled_ms" in row else {})}
        row["faces_per_s_best"] = 1000 / min(v for k, v in row.items()
                                             if k.endswith("_ms") and not k.startswith("modeled"))
        rows.append(row)
        print(f"GPEN-{size} {precision} b{batch}: plain {row['plain_eager_ms']:.3f}, form "
              f"{row.get('form_eager_ms', float('nan')):.3f}, compiled "
              f"{row.get('compiled_ms', float('nan')):.3f} ms/face; modeled {gpu.name} eager "
              f"{row['modeled_eager_ms']:.3f} compiled {row['modeled_compiled_ms']:.3f}; "
              f"measured/modeled {row['measured_over_modeled']}", flush=True)
        del plain
    return {"device": name, "modeled_as": gpu.name, "rows": rows}


# ------------------------------------------------------------------ prepare (CPU side)
def prepare() -> dict:
    """Copy the test data the GPU steps read into ``.gpucheck/testdata`` (git-ignored)."""
    source = REPO.parent / "shared" / "testdata"
    if not source.is_dir():
        raise SystemExit(f"gpu_check prepare: {source} is missing (the shared test data "
                         "beside the checkout)")
    copied = 0
    for folder, names in NEEDED.items():
        (PREPARED / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy2(source / folder / name, PREPARED / folder / name)
            copied += (PREPARED / folder / name).stat().st_size
    print(f"gpu_check prepare: {copied / 2**20:.1f} MiB of test data in "
          f"{PREPARED.relative_to(REPO)}")
    return {"bytes": copied}


PARTS = {"capture": capture, "gate": gate, "profile": profile_, "nvenc": nvenc,
         "engines": engines}

if __name__ == "__main__":
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    if part == "prepare":
        prepare()
    elif part in PARTS:
        result = record(part, PARTS[part])
        sys.exit(1 if "error" in result else 0)
    else:
        raise SystemExit(f"usage: python scripts/gpu_check.py {{{'|'.join([*PARTS, 'prepare'])}}}")
