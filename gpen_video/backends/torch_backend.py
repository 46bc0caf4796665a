"""``torch``: the GPEN network of :mod:`gpen_video.models` run by PyTorch on the CPU or CUDA.

Precision: ``fp32`` everywhere; ``fp16``/``bf16`` only on CUDA (on CPUs without AVX-512 half
precision convolutions are ~250× slower than fp32, so they are refused there). ``auto`` is fp32
on the CPU and fp16 on CUDA. The network and the batches are ``channels_last`` (on the 2-core
CPU measured 9 % faster for GPEN-BFR-256 and 21 % for -512: transposed convolutions take
oneDNN's path then); a network passed in as a module is converted in place. On CUDA the forward
pass is replayed from a CUDA graph per batch shape (:mod:`gpen_video.backends.cuda_graphs`;
``cuda_graphs=False`` runs it eagerly).

Model I/O: the network takes RGB in ``[-1, 1]`` and returns raw RGB; this backend maps the
``[0, 1]`` batch to ``x·2 − 1`` and the output back with ``y·0.5 + 0.5`` clipped to ``[0, 1]``,
in float32 (the official inference does the same, then truncates to uint8; we round later, once,
when pasting back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpen_video.backends.base import InputSpec, Restorer
from gpen_video.errors import BackendUnavailable, UsageError

_PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` → ``cuda:0``.

    Raises:
        BackendUnavailable: a CUDA device was asked for and is not there.
        UsageError: not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    import torch

    text = (device or "auto").strip().lower()
    if text == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if text == "cuda" or text.startswith("cuda:"):
        index = 0
        if ":" in text:
            try:
                index = int(text.split(":", 1)[1])
            except ValueError:
                raise UsageError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
        if not torch.cuda.is_available():
            raise BackendUnavailable(
                f"--device {device}: torch sees no CUDA GPU here; use --device cpu (or auto)"
            )
        count = torch.cuda.device_count()
        if index >= count:
            raise BackendUnavailable(
                f"--device {device}: this machine has {count} CUDA device(s), cuda:0…cuda:{count - 1}"
            )
        return f"cuda:{index}"
    raise UsageError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` → fp32 on the CPU, fp16 on CUDA.

    Raises:
        UsageError: unknown precision, or half precision asked for on the CPU.
    """
    text = (precision or "auto").lower()
    if text not in _PRECISIONS:
        raise UsageError(f"--precision {precision!r}: choose one of {', '.join(_PRECISIONS)}")
    if text == "auto":
        return "fp32" if device == "cpu" else "fp16"
    if device == "cpu" and text != "fp32":
        raise UsageError(
            f"--precision {text} on the CPU: half-precision convolutions are hundreds of times "
            "slower than fp32 on CPUs; use --precision fp32 (or auto), or a CUDA device"
        )
    return text


class TorchRestorer(Restorer):
    """GPEN in PyTorch.

    Args:
        model: a registry name (``GPEN-BFR-512``) or a weights file; or an ``nn.Module`` already
            built (then ``size`` is required).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        precision: ``auto`` | ``fp32`` | ``fp16`` | ``bf16``.
        max_batch: split larger batches (memory bound).
        cuda_graphs: on CUDA, replay the forward pass from captured CUDA graphs.
        size: crop size, when it cannot be read from the registry before loading.
        checkpoint_path, cache_dir, download, random_weights, seed: passed to
            :func:`gpen_video.models.load.load_gpen`.

    Raises (from :meth:`load`): WeightsError, DownloadError, BackendUnavailable, UsageError.
    """

    name = "torch"
    native = "torch"

    def __init__(
        self,
        model: Any = "GPEN-BFR-512",
        device: str = "auto",
        precision: str = "auto",
        max_batch: int | None = None,
        *,
        cuda_graphs: bool = True,
        size: int | None = None,
        checkpoint_path: Path | None = None,
        cache_dir: Path | None = None,
        download: bool = False,
        random_weights: bool = False,
        seed: int = 0,
    ) -> None:
        self._device = resolve_device(device)
        self._precision = resolve_precision(precision, self._device)
        self._source = model
        self._load_kwargs = dict(cache_dir=cache_dir, download=download,
                                 random_weights=random_weights, seed=seed)
        self._checkpoint_path = checkpoint_path
        self._net = None
        self._cuda_graphs = cuda_graphs and self._device.startswith("cuda")
        self._forward = None
        if self._device == "cpu":
            # one face per forward pass on the CPU: measured on the 2-core machines, GPEN-BFR-256
            # takes 0.19-0.29 s/face at batch 1 and 0.53-0.55 s/face at batch 4 or 8 (bigger
            # activations fall out of cache); batches still help on CUDA
            max_batch = 1
        if size is None and isinstance(model, str) and checkpoint_path is None:
            from gpen_video.models.weights import registry_crop_size

            size = registry_crop_size(model)
        # size may still be unknown (a .pth path): it is read from the network in load()
        super().__init__(InputSpec(size=size or 0, max_batch=max_batch))

    @property
    def device(self) -> str:
        return self._device

    @property
    def precision(self) -> str:
        return self._precision

    def describe(self) -> str:
        return f"torch ({self._device}, {self._precision}, {self.spec.size}px)"

    def _torch_dtype(self):
        import torch

        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
            self._precision]

    def _load_impl(self) -> None:
        import torch

        dtype = self._torch_dtype()
        if isinstance(self._source, torch.nn.Module):
            net = self._source.to(device=self._device, dtype=dtype)
        else:
            from gpen_video.models.load import load_gpen

            source = self._checkpoint_path if self._checkpoint_path is not None else self._source
            net = load_gpen(source, device=self._device, dtype=dtype, **self._load_kwargs)
        net.eval()
        to_channels_last(net)
        size = _network_size(net) or self.spec.size
        if not size:
            raise UsageError("cannot tell the crop size of this GPEN network; pass size=")
        if self.spec.size and size != self.spec.size:
            raise UsageError(f"the network is {size}px but {self.spec.size}px was asked for")
        self.spec = InputSpec(size=size, max_batch=self.spec.max_batch)
        self._net = net
        self._forward = _first_output(net)
        if self._cuda_graphs:
            from gpen_video.backends.cuda_graphs import GraphedForward

            self._forward = GraphedForward(self._forward)

    def _close_impl(self) -> None:
        import torch

        self._net = None
        self._forward = None  # graphs (and their memory pools) go with it
        if self._device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _restore_impl(self, batch: Any) -> Any:
        import torch

        dtype = self._torch_dtype()
        cuda = self._device.startswith("cuda")
        x = batch.to(self._device, non_blocking=cuda)
        x = (x * 2.0 - 1.0).to(dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = self._forward(x)
        return (y.float() * 0.5 + 0.5).clamp_(0.0, 1.0).contiguous()


def to_channels_last(net: Any) -> Any:
    """Store ``net``'s 4-D parameters and buffers channels_last, in place; returns ``net``.

    ``Module.to(memory_format=torch.channels_last)`` cannot be used on GPEN: it converts every
    4-D *and* 5-D tensor, and the modulated convolutions' ``1×Cout×Cin×k×k`` weights are 5-D
    (torch raises "required rank 4 tensor to use channels_last format").
    """
    import torch

    with torch.no_grad():
        for tensor in list(net.parameters()) + list(net.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return net


def _first_output(net: Any):
    """``net``'s forward returning only the image (GPEN modules may return a tuple)."""
    def forward(x: Any) -> Any:
        y = net(x)
        return y[0] if isinstance(y, (tuple, list)) else y

    return forward


def _network_size(net: Any) -> int | None:
    config = getattr(net, "config", None)
    if config is not None and getattr(config, "size", None):
        return int(config.size)
    size = getattr(net, "size", None)
    return int(size) if isinstance(size, int) else None
