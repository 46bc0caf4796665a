"""A GPU's peak FLOP/s from what it is, not from what it is called.

peak = SM count × SM clock × dense FLOP per SM per clock of the architecture (compute capability)
at the precision. The name is only a label: "NVIDIA H100 80GB HBM3" and "NVIDIA H100 PCIe" differ
in SMs and clocks, which the device reports, not in words a table has to anticipate.

Precisions: ``fp16``/``bf16`` and ``tf32`` on tensor cores (dense, no sparsity, fp32
accumulation as GPEN uses), ``fp32`` on the CUDA cores. fp32 work runs as TF32 when torch allows
it (``torch.backends.cudnn.allow_tf32``, on by default for convolutions), so an fp32 row is judged
against the TF32 peak then (:func:`effective_precision`).

The clock is the SM's maximum as the driver reports it (NVML, else ``nvidia-smi``, else the CUDA
attribute). NVIDIA's datasheets quote tensor peaks at a lower boost clock for some parts (H100
SXM: 989 TFLOP/s fp16 is 132 SMs × 1.83 GHz × 4096), so this reads up to ~8 % above them: floor
fractions come out conservative, never flattering.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

# dense FLOP per SM per clock (2 per multiply-add), by compute capability
PER_SM_CLOCK: dict[tuple[int, int], dict[str, int]] = {
    (7, 0): {"fp16": 1024, "fp32": 128},  # V100
    (7, 5): {"fp16": 1024, "fp32": 128},  # T4
    (8, 0): {"fp16": 2048, "bf16": 2048, "tf32": 1024, "fp32": 128},  # A100, A30
    (8, 6): {"fp16": 1024, "bf16": 1024, "tf32": 512, "fp32": 256},  # A10, A40 (GeForce: ½ fp16)
    (8, 9): {"fp16": 1024, "bf16": 1024, "tf32": 512, "fp32": 256},  # L4, L40S
    (9, 0): {"fp16": 4096, "bf16": 4096, "tf32": 2048, "fp32": 256},  # H100, H200
    (10, 0): {"fp16": 8192, "bf16": 8192, "tf32": 4096, "fp32": 256},  # B200
}


@dataclass(frozen=True)
class GpuPeak:
    """What a peak was computed from."""

    name: str  # label only
    compute_capability: tuple[int, int]
    sms: int
    clock_mhz: float | None
    clock_source: str
    precision: str  # fp16 | bf16 | tf32 | fp32
    flops: float | None  # None: unknown architecture, precision or clock

    def describe(self) -> str:
        cc = "{}.{}".format(*self.compute_capability)
        if self.flops is None:
            why = ("no clock" if self.clock_mhz is None else
                   f"no {self.precision} rate for compute capability {cc}")
            return f"unknown peak for {self.name} ({why})"
        return (f"{self.sms} SMs × {self.clock_mhz:.0f} MHz ({self.clock_source}) × "
                f"{PER_SM_CLOCK[self.compute_capability][self.precision]} {self.precision} "
                f"FLOP/SM/clock (sm {cc}, dense) = {self.flops / 1e12:.0f} TFLOP/s; {self.name}")


def effective_precision(precision: str, allow_tf32: bool) -> str:
    """The peak an fp32/fp16/bf16 restorer is judged against (fp32 → tf32 when allowed)."""
    if precision in ("fp16", "bf16"):
        return precision
    return "tf32" if allow_tf32 else "fp32"


def peak_from(name: str, capability: tuple[int, int], sms: int, clock_mhz: float | None,
              precision: str, clock_source: str = "given") -> GpuPeak:
    """The peak of a GPU described by its properties (pure: testable without one)."""
    rate = PER_SM_CLOCK.get(tuple(capability), {}).get(precision)
    flops = sms * clock_mhz * 1e6 * rate if rate and clock_mhz else None
    return GpuPeak(name, tuple(capability), int(sms), clock_mhz, clock_source, precision, flops)


def cuda_peak(device: str, precision: str) -> GpuPeak:
    """The peak of the CUDA ``device`` at ``precision`` (fp32 → tf32 if torch allows TF32)."""
    import torch

    index = torch.device(device).index or 0
    props = torch.cuda.get_device_properties(index)
    clock, source = max_sm_clock_mhz(index)
    if clock is None and getattr(props, "clock_rate", 0):
        clock, source = props.clock_rate / 1000.0, "CUDA clock attribute"
    p = effective_precision(precision, torch.backends.cudnn.allow_tf32)
    return peak_from(props.name, (props.major, props.minor), props.multi_processor_count, clock,
                     p, source)


def max_sm_clock_mhz(index: int) -> tuple[float | None, str]:
    """The SM's maximum clock in MHz: NVML, else ``nvidia-smi``; (None, "") when neither."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            return float(pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)), "NVML"
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVML: try the next source
        pass
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run([exe, "-i", str(index), "--query-gpu=clocks.max.sm",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=10, check=True).stdout.strip()
            return float(out.splitlines()[0]), "nvidia-smi"
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            pass
    return None, ""
