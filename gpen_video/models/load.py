"""Build GPEN networks and load official checkpoints into them, strictly and safely.

:func:`load_gpen` is the one entry point the rest of the product uses. It accepts a registry
name (``GPEN-BFR-512``; the file comes from the cache or, when asked, a download) or the path of
a ``.pth``/``.pt`` file, reads it with ``torch.load(weights_only=True)`` (no arbitrary pickle
code), unwraps training checkpoints, infers the architecture from the tensors and loads with
``strict=True``. Every way a file can be wrong ends in one :class:`WeightsError` line that says
what the file is and what to do.
"""

from __future__ import annotations

import math
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from gpen_video.errors import WeightsError
from gpen_video.models.config import GpenConfig
from gpen_video.models.gpen import GPEN
from gpen_video.models.weights import REGISTRY, get_spec, resolve_weights

# Keys under which training scripts keep the generator's weights (GPEN: g_ema; BasicSR:
# params_ema / params; Lightning and friends: state_dict).
WRAPPER_KEYS = ("g_ema", "params_ema", "state_dict", "params")

Shape = tuple[int, ...]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def build_gpen(
    config: GpenConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> GPEN:
    """A GPEN of the real architecture with random weights, in eval mode, without gradients.

    For plumbing and speed only: the output is noise-like, not a restoration. Weights follow
    the official initialisation (unit-normal conv/linear weights, modulation bias 1, other biases
    0), except the per-layer encoder-feature scales (``noise.weight``): they start at 0 in
    training, which would cut the encoder out of the network, so they are drawn from
    N(0, 0.3²) to make every path take part in comparisons. Same ``seed``, same weights,
    independent of the global RNG.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPEN(config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("noise.weight"):
                    param.normal_(0.0, 0.3)
    return _ready(model, device, dtype)


def load_gpen(
    name_or_path: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    cache_dir: Path | None = None,
    download: bool = False,
    random_weights: bool = False,
    seed: int = 0,
    expect: GpenConfig | str | None = None,
) -> GPEN:
    """A GPEN network with weights, in eval mode, ``requires_grad`` off, on ``device``/``dtype``.

    Args:
        name_or_path: a registry name (``GPEN-BFR-256|512|1024|2048``) or a checkpoint path.
            Official files are bare ``FullGenerator`` state dicts; training checkpoints wrapped
            under ``g_ema``, ``params_ema``, ``params`` or ``state_dict`` and ``module.``
            prefixes (DataParallel) are accepted too.
        device, dtype: where and in which precision the model runs (the CPU path is fp32).
        cache_dir: registry cache folder (default: see :mod:`gpen_video.models.weights`).
        download: fetch a registry file that is not cached yet (the CLI's path; off by default).
        random_weights: skip the file and build the registry entry's (or ``expect``'s)
            architecture with random weights (:func:`build_gpen`): plumbing and speed only.
        seed: seed of the random weights.
        expect: an architecture the file must have (a :class:`GpenConfig` or a registry name);
            a registry name given as ``name_or_path`` implies its own.

    Raises:
        WeightsError: unknown name, missing file, not a checkpoint, truncated, a checkpoint of
            another architecture or another model (e.g. a RetinaFace detector); one line.
        DownloadError: the download failed (only with ``download=True``).
    """
    name = str(name_or_path)
    spec = REGISTRY.get(name)
    expected = _expected_config(expect)
    if spec is not None and spec.kind != "gpen":
        raise WeightsError(f"{name} is a {spec.kind} detector, not a GPEN model: choose one of "
                           f"{', '.join(n for n, s in REGISTRY.items() if s.kind == 'gpen')}")
    if spec is not None:
        if expected is not None and expected != spec.gpen:
            raise WeightsError(f"{name} is {_describe(spec.gpen)}, not the requested "
                               f"{_describe(expected)}")
        expected = spec.gpen
    if random_weights:
        if expected is None:
            raise WeightsError(f"random weights need an architecture: pass a registry name "
                               f"({', '.join(_gpen_names())}) instead of {name}")
        return build_gpen(expected, seed=seed, device=device, dtype=dtype)

    if spec is not None:
        path = resolve_weights(name, cache_dir=cache_dir, download_missing=download)
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            if path.suffix == "" and len(path.parts) == 1:
                get_spec(name)  # raises: unknown name, lists the known ones
            raise WeightsError(f"weights file {path} does not exist: give the path of a GPEN "
                               f".pth file or one of {', '.join(_gpen_names())}")

    state = read_state_dict(path)
    config = expected if expected is not None else infer_config(state, path)
    return _load_into(config, state, path, device, dtype, label=spec.name if spec else None)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint file: unwrapped, ``module.`` stripped, all finite.

    Raises:
        WeightsError: empty, not a PyTorch checkpoint (text, HTML error page, other format),
            truncated, holding Python objects (refused under ``weights_only``), no state dict
            inside, or non-finite values.
    """
    obj = _torch_load(path)
    state = _unwrap(obj, path)
    _reject_other_models(state, path)
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{path} is damaged: tensor {key} contains NaN or infinite values; "
                               "download the file again")
    return state


def infer_config(state: Mapping[str, Tensor], path: Path | str = "checkpoint") -> GpenConfig:
    """The architecture of a GPEN ``FullGenerator`` state dict, read from its tensors.

    size from the number of encoder stages (``ecd0`` … ``ecd{log2 S - 2}``), narrow from the 4×4
    constant input (512·narrow channels), channel_multiplier from the 64×64 layers, style_dim
    and n_mlp from the mapping network, isconcat from the first activation's width. lr_mlp and
    the blur taps are not visible in the tensors and keep the official values.

    Raises:
        WeightsError: the tensors are not those of a GPEN generator.
    """
    try:
        n_encoder = 1 + max(int(m.group(1)) for key in state
                            if (m := re.match(r"ecd(\d+)\.", key)))
        c4 = state["generator.input.input"].shape[1]
        style_dim, _ = state["generator.style.1.weight"].shape
        n_mlp = sum(1 for key in state if re.fullmatch(r"generator\.style\.\d+\.weight", key))
        concat = state["generator.conv1.activate.bias"].shape[0] == 2 * c4
    except (ValueError, KeyError, IndexError) as exc:
        raise WeightsError(f"{path} is not a GPEN generator checkpoint (no {exc}); "
                           f"{_key_sample(state)}") from None
    size = 2 ** (n_encoder + 1)
    narrow = c4 / 512
    multiplier = 2
    conv64 = state.get("generator.convs.6.conv.weight")  # first 64×64 layer
    if size >= 64 and conv64 is not None:
        multiplier = max(1, round(conv64.shape[1] / (256 * narrow)))
    try:
        return GpenConfig(size, channel_multiplier=multiplier, narrow=narrow,
                          style_dim=style_dim, n_mlp=n_mlp, isconcat=concat)
    except ValueError as exc:
        raise WeightsError(f"{path} does not describe a valid GPEN: {exc}") from None


def expected_shapes(config: GpenConfig) -> dict[str, Shape]:
    """Key → shape of the state dict a GPEN with ``config`` has (built on the meta device)."""
    with torch.device("meta"):
        model = GPEN(config)
    return {key: tuple(t.shape) for key, t in model.state_dict().items()}


def mismatch_summary(expected: Mapping[str, Shape], found: Mapping[str, Shape], limit: int = 3
                     ) -> str:
    """One line naming missing and unexpected keys and wrong shapes (first few of each), or ''."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    shapes = [f"{k} is {_fmt(found[k])} in the file, {_fmt(expected[k])} in the model"
              for k in wrong]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected),
                         ("with another shape", shapes)):
        if items:
            shown = limit if items is not shapes else max(1, limit - 1)
            more = f", +{len(items) - shown} more" if len(items) > shown else ""
            parts.append(f"{len(items)} {label} ({', '.join(items[:shown])}{more})")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------------------


def _gpen_names() -> list[str]:
    return [n for n, s in REGISTRY.items() if s.kind == "gpen"]


def _expected_config(expect: GpenConfig | str | None) -> GpenConfig | None:
    if expect is None or isinstance(expect, GpenConfig):
        return expect
    spec = get_spec(expect)
    if spec.gpen is None:
        raise WeightsError(f"{expect} is not a GPEN model: choose one of {', '.join(_gpen_names())}")
    return spec.gpen


def _describe(config: GpenConfig) -> str:
    official = [n for n, s in REGISTRY.items() if s.gpen == config]
    name = f" ({official[0]})" if official else ""
    return (f"size {config.size}, channel_multiplier {config.channel_multiplier}, "
            f"narrow {config.narrow:g}{name}")


def _fmt(shape: Shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def _key_sample(state: Mapping[str, object], n: int = 3) -> str:
    keys = list(state)
    if not keys:
        return "it holds no tensors"
    more = f" … ({len(keys)} keys)" if len(keys) > n else ""
    return "its keys start " + ", ".join(keys[:n]) + more


def _ready(model: GPEN, device: torch.device | str, dtype: torch.dtype) -> GPEN:
    model = model.to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    return model


def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)`` with every failure turned into one WeightsError line."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror}") from None
    if size == 0:
        raise WeightsError(f"{path} is empty (0 bytes): an interrupted download? get the file "
                           "again")
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # neither torch.save format
        raise WeightsError(_why_unreadable(path, size, head, None))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise WeightsError(
                f"{path} holds Python objects besides tensors, which are not loaded for safety; "
                "save just the generator: torch.save(model.state_dict(), 'gpen.pth')"
            ) from None
        cause = exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, KeyError, … by format
        cause = exc
    raise WeightsError(_why_unreadable(path, size, head, cause)) from None


def _why_unreadable(path: Path, size: int, head: bytes, exc: BaseException | None) -> str:
    """One line on why ``path`` could not be read, from its first bytes and torch's error."""
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            return (f"{path} is truncated or damaged (an incomplete zip archive of {size} bytes): "
                    "download it again")
        detail = str(exc).strip()
        first = detail.splitlines()[0][:120] if detail else type(exc).__name__
        return f"{path} is a zip archive but not a PyTorch checkpoint ({first})"
    if head[:1] == b"\x80":  # pickle protocol >= 2: the legacy torch.save format
        return (f"{path} is truncated or damaged (the checkpoint ends early at {size} bytes): "
                "download it again")
    if all(32 <= b < 127 or b in b"\t\r\n" or b >= 0x80 for b in head):
        text = head.decode("utf-8", errors="replace").strip()
        first = text.splitlines()[0][:40] if text else ""
        return (f"{path} is a text file, not a PyTorch checkpoint (it starts {first!r}); a failed "
                "download can save an error page: download it again")
    return f"{path} is not a PyTorch checkpoint (unrecognised format): pass a GPEN .pth file"


def _unwrap(obj: object, path: Path) -> dict[str, Tensor]:
    """The generator's state dict inside a loaded checkpoint, ``module.`` prefixes removed."""
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict: pass a GPEN "
                           ".pth file")
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner:
            obj = inner
            break
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
    if not tensors:
        raise WeightsError(f"{path} holds no tensors at the top level or under "
                           f"{'/'.join(WRAPPER_KEYS)} (its keys: {', '.join(map(str, list(obj)[:5]))})"
                           ": pass a GPEN .pth file")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _reject_other_models(state: Mapping[str, Tensor], path: Path) -> None:
    """Recognise files of other models that users pass by mistake, and say which they are."""
    keys = list(state)
    if any(k.split(".")[0] in ("ClassHead", "BboxHead", "LandmarkHead", "ssh1") for k in keys):
        raise WeightsError(f"{path}: this is a RetinaFace detector file, not GPEN; give it to "
                           "--detector-weights, and give --model a GPEN-BFR-*.pth file")
    if any(k.startswith(("stylegan_decoder.", "conv_body_first.")) for k in keys):
        raise WeightsError(f"{path} is a GFPGAN checkpoint, not GPEN: give --model a "
                           "GPEN-BFR-*.pth file")
    if not any(k.startswith("generator.") for k in keys) or "ecd0.0.0.weight" not in state:
        raise WeightsError(f"{path} is not a GPEN FullGenerator checkpoint (expected keys like "
                           f"ecd0.0.0.weight and generator.style.1.weight; {_key_sample(state)})")


def _load_into(
    config: GpenConfig,
    state: dict[str, Tensor],
    path: Path,
    device: torch.device | str,
    dtype: torch.dtype,
    label: str | None,
) -> GPEN:
    expected = expected_shapes(config)
    found = {k: tuple(v.shape) for k, v in state.items()}
    problems = mismatch_summary(expected, found)
    if problems:
        target = f"{label}: " if label else ""
        actual = _actual_description(state)
        raise WeightsError(
            f"{path} does not fit {target}{_describe(config)}; {actual}keys: {problems}; "
            "pass the matching --model name or file"
        )
    with torch.device("meta"):
        model = GPEN(config)
    model.load_state_dict(state, strict=True, assign=True)
    return _ready(model, device, dtype)


def _actual_description(state: Mapping[str, Tensor]) -> str:
    try:
        config = infer_config(state)
    except WeightsError:
        return ""
    if not math.isclose(config.narrow * 512, round(config.narrow * 512)):
        return ""
    return f"the file looks like {_describe(config)}; "
