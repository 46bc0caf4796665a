"""The one :class:`Restorer` interface every backend implements.

Conventions (the whole product relies on them):

* A batch is ``N×3×S×S``, RGB, ``float32``, values in ``[0, 1]``, NCHW, C-contiguous. ``S`` is
  the restorer's :attr:`InputSpec.size` (the crop size of the model: 256, 512, …). The crop is
  the aligned face as :mod:`gpen_video.compose` makes it (its Convention: pixel centres at
  integer coordinates, bicubic warp).
* ``restore(batch)`` accepts a ``numpy.ndarray`` or a ``torch.Tensor`` and returns the same kind:
  numpy in → numpy out (float32, same shape); torch in → torch out (float32, on the restorer's
  device when it has one). Output values are clipped to ``[0, 1]``.
* Every backend is built the same way: ``Backend(model, restore, **overrides)`` — ``model`` a
  :data:`ModelSource` (:class:`~gpen_video.options.ModelOptions`, a GPEN ``nn.Module``, or a
  weights path / registry name; some backends take more, e.g. an ``.onnx`` file), ``restore``
  the :class:`~gpen_video.options.RestoreOptions` (device, precision, batch, …), and
  backend-specific keyword overrides documented on each class. A backend gets its network
  from :func:`load_network` and maps values with :mod:`gpen_video.models.io`.
* The base class owns the lifecycle (``load()``/``close()``, context manager, lazy load on first
  ``restore``), the input checks, chunking to :attr:`InputSpec.max_batch`, and the conversion
  between numpy and torch. A backend implements only ``_load_impl``, ``_restore_impl`` and,
  optionally, ``_close_impl`` — ``_restore_impl`` gets an already checked batch in the backend's
  :attr:`Restorer.native` kind and returns the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gpen_video.errors import UsageError


@dataclass(frozen=True)
class InputSpec:
    """What :meth:`Restorer.restore` accepts."""

    size: int  # S: crops are S×S
    channels: int = 3  # RGB
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)
    layout: str = "NCHW"
    max_batch: int | None = None  # larger batches are split by the base class; None: no limit


class Restorer:
    """Base class: lifecycle and checks here, the model in ``_impl`` methods of a subclass.

    Subclasses set :attr:`name` and :attr:`native` (``"numpy"``, ``"torch"``, or ``"any"``: the
    kind of array ``_restore_impl`` takes and returns; ``"any"`` gets the caller's kind unchanged)
    and pass their :class:`InputSpec` to ``__init__``.
    """

    name: ClassVar[str] = "base"
    native: ClassVar[str] = "numpy"
    _device: str = "cpu"  # set by backends that resolve a device ...
    _precision: str = "fp32"  # ... and a precision

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self._loaded = False

    # ---------------------------------------------------------------- lifecycle
    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> "Restorer":
        """Build/load the model (idempotent). Raises what the backend's ``_load_impl`` raises."""
        if not self._loaded:
            self._load_impl()
            self._loaded = True
        return self

    def close(self) -> None:
        """Release the model and its device memory (idempotent)."""
        if self._loaded:
            self._close_impl()
            self._loaded = False

    def __enter__(self) -> "Restorer":
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def device(self) -> str:
        """Where the model runs (``"cpu"``, ``"cuda:0"``)."""
        return self._device

    @property
    def precision(self) -> str:
        """What the model computes in (``"fp32"``, ``"fp16"``, ``"bf16"``)."""
        return self._precision

    def describe(self) -> str:
        """One line for logs and the run summary."""
        return f"{self.name} ({self.device}, {self.spec.size}px)"

    # ---------------------------------------------------------------- restore
    def restore(self, batch: Any, *, trusted_range: bool = False) -> Any:
        """Restore a batch of aligned faces.

        Args:
            batch: ``N×3×S×S`` float32 RGB in ``[0, 1]`` (numpy array or torch tensor).
            trusted_range: the caller vouches for the value range (crops of the product's own
                geometry, clipped to ``[0, 1]``): the check is skipped, as on a GPU it would
                make the host wait for the device. Shape and dtype are checked regardless.

        Returns:
            The restored faces, same shape and kind as ``batch``, float32 in ``[0, 1]``.

        Raises:
            UsageError: wrong shape, dtype or value range.
        """
        is_torch = _is_torch(batch)
        self._check(batch, is_torch, trusted_range)
        self.load()
        native = self._to_native(batch, is_torch)
        limit = self.spec.max_batch
        if limit is None or native.shape[0] <= limit:
            out = self._restore_impl(native)
        else:
            parts = [self._restore_impl(native[i:i + limit])
                     for i in range(0, native.shape[0], limit)]
            out = _concat(parts, self.native)
        return self._from_native(out, is_torch)

    def _check(self, batch: Any, is_torch: bool, trusted_range: bool = False) -> None:
        s = self.spec.size
        shape = tuple(batch.shape)
        if len(shape) != 4 or shape[1] != self.spec.channels or shape[2] != s or shape[3] != s:
            raise UsageError(f"{self.name} restorer expects N×3×{s}×{s} RGB crops, got {shape}")
        if shape[0] == 0:
            raise UsageError(f"{self.name} restorer got an empty batch")
        dtype = str(batch.dtype).replace("torch.", "")
        if dtype != self.spec.dtype:
            raise UsageError(f"{self.name} restorer expects {self.spec.dtype} crops, got {dtype}")
        if trusted_range:
            return
        lo, hi = self.spec.value_range
        tol = 1e-3
        if is_torch:
            import torch

            # one reduction, one wait for a device batch (min() and max() would be two)
            bmin, bmax = (float(v) for v in torch.aminmax(batch.detach()))
        else:
            bmin, bmax = float(batch.min()), float(batch.max())
        if not (bmin >= lo - tol and bmax <= hi + tol):  # also catches NaN
            raise UsageError(
                f"{self.name} restorer expects values in [{lo}, {hi}], got [{bmin:.4g}, {bmax:.4g}]"
                " (divide 8-bit pixels by 255)"
            )

    def _to_native(self, batch: Any, is_torch: bool) -> Any:
        if self.native == "any":
            return batch
        if self.native == "numpy":
            if is_torch:
                return batch.detach().cpu().numpy()
            return np.ascontiguousarray(batch)
        import torch

        if is_torch:
            return batch
        return torch.from_numpy(np.ascontiguousarray(batch))

    def _from_native(self, out: Any, want_torch: bool) -> Any:
        if self.native == "any":
            return out
        if self.native == "numpy":
            if want_torch:
                import torch

                return torch.from_numpy(np.ascontiguousarray(out))
            return out
        if want_torch:
            return out
        return out.detach().cpu().numpy()

    # ---------------------------------------------------------------- backend parts
    def _load_impl(self) -> None:
        """Build or load the model. Raise a :class:`~gpen_video.errors.GpenVideoError`."""

    def _close_impl(self) -> None:
        """Free what ``_load_impl`` made."""

    def _restore_impl(self, batch: Any) -> Any:  # pragma: no cover - abstract
        """``batch``: checked ``N×3×S×S`` float32 [0, 1] in :attr:`native` kind; same out."""
        raise NotImplementedError


ModelSource = Any  # ModelOptions | torch.nn.Module | str | Path: what a backend restores with


def model_crop_size(model: ModelSource) -> int | None:
    """Crop size of a backend's ``model``: a registry name (alone or in :class:`ModelOptions`
    without a checkpoint file), or a network with a ``config``; ``None`` when it can be known
    only after loading (a ``.pth`` path)."""
    from gpen_video.models.weights import registry_crop_size
    from gpen_video.options import ModelOptions

    if isinstance(model, ModelOptions):
        return registry_crop_size(model.name) if model.checkpoint_path is None else None
    if isinstance(model, (int, float)):
        raise TypeError(f"a backend's model is ModelOptions, a network or a path, not {model!r}: "
                        "give a crop size as size=")
    if isinstance(model, str):
        return registry_crop_size(model)
    config = getattr(model, "config", None)
    return int(config.size) if config is not None else None


def model_label(model: ModelSource) -> str:
    """A short name of ``model`` for file names and messages: the model name of
    :class:`ModelOptions` (``GPEN-BFR-512``), else ``gpen``."""
    from gpen_video.options import ModelOptions

    if isinstance(model, ModelOptions):
        return Path(str(model.name)).stem
    return "gpen"


def load_network(model: ModelSource, device: str | None = None, dtype: Any = None, *,
                 seed: int = 0) -> Any:
    """The GPEN network ``model`` stands for, in eval mode.

    A module is returned as it is, moved to ``device``/``dtype`` when given. A
    :class:`ModelOptions` loads its checkpoint file, else its registry name, with its cache,
    download and random-weights settings; a path or registry name loads that (no download).
    Loaded networks go to ``device``/``dtype`` (default CPU, float32); ``seed`` picks the random
    weights.

    Raises:
        WeightsError, DownloadError, UsageError: from :func:`gpen_video.models.load.load_gpen`.
    """
    import torch

    from gpen_video.models.load import load_gpen
    from gpen_video.options import ModelOptions

    if isinstance(model, torch.nn.Module):
        if device is None and dtype is None:
            return model
        return model.to(device=device, dtype=dtype)
    where = dict(device=device or "cpu", dtype=dtype or torch.float32, seed=seed)
    if isinstance(model, ModelOptions):
        source = model.checkpoint_path if model.checkpoint_path is not None else model.name
        return load_gpen(source, cache_dir=model.cache_dir, download=model.download,
                         random_weights=model.random_weights, **where)
    return load_gpen(model, **where)


def _is_torch(batch: Any) -> bool:
    return type(batch).__module__.startswith("torch")


def _concat(parts: list[Any], native: str) -> Any:
    if not _is_torch(parts[0]):
        return np.concatenate(parts, axis=0)
    import torch

    return torch.cat(parts, dim=0)
