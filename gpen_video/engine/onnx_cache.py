"""The dynamic-batch ONNX export of a GPEN, cached by what determines its content.

The export itself is :func:`gpen_video.models.export.export_onnx` (one exporter in the product);
this module only decides the file name and makes concurrent processes export it once.

Cache key: sha256 of the weights (every tensor of the state dict: name, dtype, shape, bytes), the
architecture (:class:`~gpen_video.models.config.GpenConfig`), the opset, the torch version
(the exporter) and :data:`EXPORT_RECIPE` (bumped when the export code changes its graph).
File: ``<label>-<size>px-opset<N>-r<recipe>-<key[:16]>.onnx`` in the engine folder; found by its
key whatever the label it was first saved under (the recipe in the name lets ``engine clean`` tell
exports of an earlier recipe). Written and checked through :mod:`gpen_video.engine.artifact`: a
hash beside it, a damaged file rebuilt, a sound one in a read-only folder used as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from gpen_video.engine.artifact import check_artifact, damage, write_artifact
from gpen_video.engine.artifact import file_sha256  # noqa: F401 - re-exported (engine.build)
from gpen_video.engine.locking import lock_for
from gpen_video.engine.paths import engine_dir, require_writable

if TYPE_CHECKING:
    import torch

EXPORT_RECIPE = 2  # 2: constant subgraphs folded (gpen_video.models.onnx_fold)


def weights_digest(model: "torch.nn.Module") -> str:
    """Hex sha256 of every tensor of ``model``'s state dict (name, dtype, shape, fp32 bytes).

    Tensors are hashed as contiguous CPU float32 (integers as they are), so the digest does not
    depend on the device or the dtype the model happens to be in.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach()
        if t.is_floating_point():
            t = t.to(dtype=torch.float32)
        t = t.to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(t.dtype).encode())
        digest.update(repr(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def onnx_cache_key(weights_sha256: str, config: object, opset: int) -> str:
    """Hex sha256 of everything that determines the exported file (see the module docstring)."""
    import torch

    record = {
        "weights": weights_sha256,
        "config": asdict(config) if hasattr(config, "__dataclass_fields__") else repr(config),
        "opset": int(opset),
        "torch": ".".join(torch.__version__.split("+")[0].split(".")[:2]),
        "recipe": EXPORT_RECIPE,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.") or "gpen"


def cached_onnx(
    model: "torch.nn.Module",
    cache_dir: Path | str | None = None,
    opset: int | None = None,
    label: str = "gpen",
    log=None,
) -> Path:
    """The ONNX file of ``model`` in the engine folder, exported now if it is not there.

    Args:
        model: a GPEN (its ``config`` names the architecture).
        cache_dir: engine folder (default :func:`gpen_video.engine.paths.default_engine_dir`).
        opset: ONNX opset (default the exporter's).
        label: readable part of the file name (the model name).
        log: a callable taking one line (e.g. ``logger.info``), told when an export happens.

    Raises:
        OutputError: the folder cannot be written. BackendUnavailable: ``onnx`` is missing.
    """
    from gpen_video.models.export import DEFAULT_OPSET, export_onnx

    opset = DEFAULT_OPSET if opset is None else int(opset)
    folder = engine_dir(cache_dir, writable=False)
    config = model.config
    key = onnx_cache_key(weights_digest(model), config, opset)
    suffix = f"-{config.size}px-opset{opset}-r{EXPORT_RECIPE}-{key[:16]}.onnx"
    found = _find(folder, suffix)
    if found is not None and damage(found) is None:
        return found  # sound: used as it is, even from a read-only folder
    path = found if found is not None else folder / f"{_slug(label)}{suffix}"
    require_writable(folder, path.name)
    with lock_for(folder / f"export{suffix}"):
        # another process may have exported (or repaired) it while we waited; a damaged one
        # is named in one warning and removed here
        found = _find(folder, suffix)
        if found is not None and check_artifact(found):
            return found
        if log is not None:
            log(f"exporting {label} to ONNX (dynamic batch, opset {opset}): {path}")
        write_artifact(path, lambda tmp: export_onnx(model, tmp, opset=opset))
    return path


_EXPORT_NAME = re.compile(r"^(?P<stem>.+-\d+px-opset\d+-(?:r(?P<recipe>\d+)-)?[0-9a-f]{16})\.onnx$")


def export_recipe_of(name: str) -> int | None:
    """The export recipe of a file named like :func:`cached_onnx`'s exports (names without
    ``-r<R>-`` come from recipe 1); ``None`` for any other name."""
    m = _EXPORT_NAME.match(name)
    return int(m.group("recipe") or 1) if m else None


def _find(folder: Path, suffix: str) -> Path | None:
    """A cached export with this key, whatever label it was first saved under."""
    return next((p for p in sorted(folder.glob(f"*{suffix}")) if p.is_file()), None)
