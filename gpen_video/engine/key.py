"""Engine cache keys: everything that changes what a serialised TensorRT engine computes or
whether it loads.

An engine is tied to the ONNX graph it came from (its sha256), the TensorRT version that built
it (plans do not load across versions), the GPU (tactics are timed on one model; plans are
specific to its compute capability), the precision (fp32/fp16/bf16, and with it the FP32-pinning
policy of :mod:`gpen_video.engine.precision`), the optimisation profile, and this product's build
recipe (:data:`BUILD_RECIPE`, bumped when the builder code changes what it asks TensorRT for).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

from gpen_video.engine.profile import Profile
from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.options import ENGINE_PRECISIONS

BUILD_RECIPE = 2  # 2: strongly typed networks, precision written into the ONNX graph


@dataclass(frozen=True)
class DeviceInfo:
    """The GPU an engine is built for."""

    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: tuple[int, int]  # e.g. (9, 0)

    @property
    def sm(self) -> str:
        return f"sm{self.compute_capability[0]}{self.compute_capability[1]}"


def cuda_device_info(device: str = "cuda:0") -> DeviceInfo:
    """Name and compute capability of a CUDA device, via torch.

    Raises:
        BackendUnavailable: torch sees no CUDA GPU (or not that index).
    """
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT engines need a CUDA GPU and torch sees none here; "
                                 "--backend torch runs on the CPU")
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        raise BackendUnavailable(f"{device}: this machine has {torch.cuda.device_count()} CUDA "
                                 "device(s)")
    major, minor = torch.cuda.get_device_capability(index)
    return DeviceInfo(torch.cuda.get_device_name(index), (int(major), int(minor)))


@dataclass(frozen=True)
class EngineKey:
    """What an engine file is valid for. Two builds with equal keys are interchangeable."""

    onnx_sha256: str
    tensorrt_version: str
    device: DeviceInfo
    precision: str  # fp32 | fp16 | bf16
    profile: Profile
    size: int  # crop size of the model (also in the ONNX, kept for the file name)
    recipe: int = BUILD_RECIPE

    def __post_init__(self) -> None:
        if self.precision not in ENGINE_PRECISIONS:
            raise UsageError(f"engine precision {self.precision!r}: choose one of "
                             f"{', '.join(ENGINE_PRECISIONS)}")

    def as_dict(self) -> dict:
        record = asdict(self)
        record["device"]["compute_capability"] = list(self.device.compute_capability)
        return record

    def digest(self) -> str:
        """Hex sha256 of the canonical JSON of every field."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def filename(self, label: str = "gpen") -> str:
        """``<label>-<S>px-<precision>-<profile>-<gpu>-<sm>-trt<ver>-<digest[:12]>.plan``.

        The readable parts are for people listing the folder; the digest is what makes it unique.
        """
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.device.name).strip("-").lower() or "gpu"
        stem = re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-.") or "gpen"
        return (f"{stem}-{self.size}px-{self.precision}-{self.profile.tag()}-{gpu[:32]}-"
                f"{self.device.sm}-trt{self.tensorrt_version}-{self.digest()[:12]}.plan")


def timing_cache_name(tensorrt_version: str, device: DeviceInfo) -> str:
    """One timing cache per TensorRT version and GPU model (timings are not portable)."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", device.name).strip("-").lower() or "gpu"
    return f"timing-trt{tensorrt_version}-{gpu[:32]}-{device.sm}.cache"


def timing_cache_version(name: str) -> str | None:
    """The TensorRT version in a file named like :func:`timing_cache_name`; ``None`` otherwise."""
    m = re.match(r"^timing-trt(?P<version>.+?)-.+\.cache$", name)
    return m.group("version") if m else None
