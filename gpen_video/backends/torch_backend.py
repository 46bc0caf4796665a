"""``torch``: the GPEN network of :mod:`gpen_video.models` run by PyTorch on the CPU or CUDA.

Precision: ``fp32`` everywhere; ``fp16``/``bf16`` only on CUDA (on CPUs without AVX-512 half
precision convolutions are hundreds of times slower than fp32, so they are refused there).
``auto`` is fp32 on the CPU and fp16 on CUDA. The network and the batches are ``channels_last``
(faster on the CPU too: transposed convolutions take oneDNN's path then); a network passed in as
a module is converted in place. Measurements: ``benchmarks/RESULTS.md``, "Numbers behind design choices". On CUDA the forward
pass is replayed from CUDA graphs captured in ``load()`` for a fixed set of batch sizes (1, 2,
4, … up to ``RestoreOptions.batch``; a partial batch is padded to the next one), before any
pipeline thread runs CUDA work (:mod:`gpen_video.backends.cuda_graphs`; ``cuda_graphs=False``
runs it eagerly).

The network runs in its inference form (:mod:`gpen_video.models.inference`: weight-only math done
once, constant gains folded, epilogues in place), the same function as the plain module to
rounding. ``RestoreOptions.tactics`` picks how each resampling and modulated layer is computed:
timed on this device and cached (:mod:`gpen_video.engine.tactics`), or the plain arithmetic.
``RestoreOptions.compile`` runs it as an Inductor-compiled engine built once per weights, device,
precision, batch profile and torch version and cached in the engine folder
(:mod:`gpen_video.engine.compiled`); a missing compiler or a failed build falls back to the eager
form with one warning.

Model I/O: the network takes RGB in ``[-1, 1]`` and returns raw RGB; the batch and the output
are mapped by :mod:`gpen_video.models.io` (``x·2 − 1`` in, ``clip(y·0.5 + 0.5, 0, 1)`` out, in
float32; the official inference does the same, then truncates to uint8; we round later, once,
when pasting back).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gpen_video.backends.base import InputSpec, ModelSource, Restorer, load_network, \
    model_crop_size, model_label
from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.models.io import model_to_unit, unit_to_model
from gpen_video.options import COMPILE_MODES, PRECISIONS, TACTIC_MODES, ModelOptions, \
    RestoreOptions, check_choice

log = logging.getLogger("gpen_video.backends")

GRAPH_BATCH = 32  # largest captured batch when no batch limit is given (larger ones are cut)


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
    text = check_choice("--precision", (precision or "auto").lower(), PRECISIONS)
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
        model: :class:`ModelOptions` (a registry name or weights file, and where weights come
            from), a registry name or weights path, or a GPEN ``nn.Module`` (moved to the
            device in place).
        restore: ``device`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``), ``precision``
            (``auto`` | ``fp32`` | ``fp16`` | ``bf16``), ``batch`` (larger batches are split;
            one face per forward pass on the CPU), ``cuda_graphs`` (captured at load for the
            sizes of :func:`~gpen_video.backends.cuda_graphs.plan_batch_sizes` up to ``batch``,
            :data:`GRAPH_BATCH` when it is None).
        size: crop size, when it cannot be known before loading (a ``.pth`` path).
        seed: seed of random weights (``ModelOptions.random_weights``).
        quality_gate: on CUDA, use fp16/bf16 only after the quality gate passed it, falling back
            otherwise (:mod:`gpen_video.backends.torch_gate`; verdicts cached in
            ``restore.engine_dir``); :attr:`gate` holds the verdicts.
        gate_images: the gate's face crops (default: :func:`gpen_video.engine.gate.default_gate_dir`).

    Raises (from :meth:`load`): WeightsError, DownloadError, BackendUnavailable, UsageError.
    """

    name = "torch"
    native = "torch"

    def __init__(self, model: ModelSource = None, restore: RestoreOptions | None = None, *,
                 size: int | None = None, seed: int = 0, quality_gate: bool = True,
                 gate_images: Path | None = None) -> None:
        restore = restore or RestoreOptions()
        self._device = resolve_device(restore.device)
        self._precision = resolve_precision(restore.precision, self._device)
        self._source = model if model is not None else ModelOptions()
        self._seed = seed
        self._net = None
        self._cuda_graphs = restore.cuda_graphs and self._device.startswith("cuda")
        self._forward = None
        self._quality_gate = quality_gate
        self._engine_dir = restore.engine_dir
        self._gate_images = gate_images
        self.gate = None  # the torch_gate.GateChoice of load(), when a gate was consulted
        self._compile = check_choice("--compile", restore.compile, COMPILE_MODES) == "on"
        self._tactics = check_choice("--tactics", restore.tactics, TACTIC_MODES)
        self.tactics = None  # the engine.tactics.TimedPlan of load(), when tactics were timed
        self.engine = None  # the engine.compiled.CompiledEngine of load(), when compiled
        max_batch: int | None = restore.batch
        if self._device == "cpu":
            # one face per forward pass on the CPU: bigger batches are slower per face there
            # (benchmarks/RESULTS.md, "Numbers behind design choices"); they help on CUDA
            max_batch = 1
        # size may still be unknown (a .pth path): it is read from the network in load()
        size = size or model_crop_size(self._source)
        super().__init__(InputSpec(size=size or 0, max_batch=max_batch))

    def describe(self) -> str:
        how = "compiled" if self.engine is not None else "eager"
        return f"torch ({self._device}, {self._precision}, {how}, {self.spec.size}px)"

    def _torch_dtype(self):
        import torch

        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
            self._precision]

    def _load_impl(self) -> None:
        import torch

        gated = (self._quality_gate and self._device.startswith("cuda")
                 and self._precision != "fp32")
        dtype = torch.float32 if gated else self._torch_dtype()  # the gate needs FP32 weights
        net = load_network(self._source, self._device, dtype, seed=self._seed)
        net.eval()
        to_channels_last(net)
        size = _network_size(net) or self.spec.size
        if not size:
            raise UsageError("cannot tell the crop size of this GPEN network; pass size=")
        if self.spec.size and size != self.spec.size:
            raise UsageError(f"the network is {size}px but {self.spec.size}px was asked for")
        self.spec = InputSpec(size=size, max_batch=self.spec.max_batch)
        if gated:
            self._precision = self._gated_precision(net, size)
            net = to_channels_last(net.to(dtype=self._torch_dtype()))
        self._net = self._fast_form(net)
        self._forward = _first_output(self._net) if self.engine is None else self.engine
        if self._cuda_graphs:
            try:
                self._forward = self._graphed(self._forward, size, self._torch_dtype())
            except Exception as exc:  # noqa: BLE001 — a compiled engine that cannot be captured
                if self.engine is None:
                    raise
                log.warning("the compiled engine cannot be captured in CUDA graphs (%s); "
                            "running it without them", exc)
                self._forward = self.engine

    def _fast_form(self, net: Any) -> Any:
        """``net``'s inference form with its tactics, and its compiled engine when asked for
        (``self.engine``); the plain ``net`` goes."""
        from gpen_video.models.inference import inference_form

        folder = None
        timed = self._tactics == "timed" or (self._tactics == "auto" and (
            self._compile or self._device.startswith("cuda")))
        if timed or self._compile:
            folder = self._cache_folder()
        form = to_channels_last(inference_form(net))
        if timed:
            from gpen_video.engine.tactics import choose_tactics

            batch = 1 if self._device == "cpu" else (self.spec.max_batch or GRAPH_BATCH)
            self.tactics = choose_tactics(form, self._device, self._precision, batch, folder)
            to_channels_last(form)
        if self._compile:
            self.engine = self._compiled(net, form, folder)
        return form

    def _cache_folder(self) -> Path | None:
        from gpen_video.engine.paths import engine_dir
        from gpen_video.errors import OutputError

        try:
            return engine_dir(self._engine_dir)
        except OutputError as exc:
            log.warning("%s; tactics are timed but not cached, and the network is not compiled",
                        exc)
            self._compile = False
            return None

    def _compiled(self, net: Any, form: Any, folder: Path | None) -> Any:
        """The compiled engine of ``form``, or None (eager) with one warning saying why."""
        from gpen_video.engine.compiled import compiled_engine, compiler_missing
        from gpen_video.engine.onnx_cache import weights_digest

        if folder is None:
            return None
        missing = compiler_missing(self._device)
        if missing:
            log.warning("--compile: %s; GPEN runs eagerly (slower)", missing)
            return None
        max_batch = 1 if self._device == "cpu" else (self.spec.max_batch or GRAPH_BATCH)
        try:
            return compiled_engine(form, weights_digest(net), self._device, self._precision,
                                   max_batch, folder, label=model_label(self._source),
                                   notice=_build_notice)
        except Exception as exc:  # noqa: BLE001 — any build failure: eager, said once
            log.warning("--compile: the Inductor build failed (%s: %s); GPEN runs eagerly",
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            return None

    def _gated_precision(self, net: Any, size: int) -> str:
        """The requested precision if the quality gate passes it (now or cached), else the
        first of its fallbacks that does; ``net`` is the FP32 network."""
        import copy

        import torch

        from gpen_video.backends.torch_gate import TorchGateKey, choose_precision, weights_sha256
        from gpen_video.engine.gate import load_gate_faces
        from gpen_video.engine.paths import engine_dir
        from gpen_video.errors import OutputError

        digest = weights_sha256(net)
        index = torch.device(self._device).index or 0
        gpu = torch.cuda.get_device_name(index)
        cc = "{}.{}".format(*torch.cuda.get_device_capability(index))

        def key_for(precision: str) -> TorchGateKey:
            return TorchGateKey(digest, gpu, cc, precision, torch.__version__, size)

        def restorer(precision: str) -> "TorchRestorer":
            options = RestoreOptions(device=self._device, precision=precision, batch=8,
                                     cuda_graphs=False)
            return TorchRestorer(copy.deepcopy(net), options, size=size, quality_gate=False)

        try:
            folder = engine_dir(self._engine_dir)
        except OutputError as exc:
            log.warning("%s; the quality gate's verdict is not cached", exc)
            folder = None
        self.gate = choose_precision(self._precision, key_for, restorer,
                                     lambda: restorer("fp32"),
                                     lambda: load_gate_faces(size, self._gate_images), folder)
        return self.gate.precision

    def _graphed(self, forward: Any, size: int, dtype: Any) -> Any:
        """``forward`` replayed from graphs captured now, for every planned batch size."""
        import torch

        from gpen_video.backends.cuda_graphs import GraphedForward, plan_batch_sizes

        sizes = plan_batch_sizes(self.spec.max_batch or GRAPH_BATCH)
        example = torch.zeros((1, 3, size, size), device=self._device, dtype=dtype)
        with torch.inference_mode():
            return GraphedForward(forward, sizes).prepare(
                example.contiguous(memory_format=torch.channels_last))

    @property
    def graph_sizes(self) -> tuple[int, ...]:
        """The batch sizes whose CUDA graphs were captured at load (empty: eager)."""
        return getattr(self._forward, "captured_sizes", ())

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
        x = unit_to_model(x).to(dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = self._forward(x)
        return model_to_unit(y).contiguous()


def _build_notice(line: str) -> None:
    # WARNING so it shows by default: the first run pauses for the build (a minute or more)
    log.warning(f"{line} (once; later runs reuse it)")


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
