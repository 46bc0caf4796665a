"""Registry of downloadable weights, described as data, and their download/cache.

Nothing here touches the network at import. A download happens only through
:func:`resolve_weights` with ``download=True`` (the CLI's path) or ``gpen-video download NAME``.

Cache folder: ``$GPEN_VIDEO_HOME/weights`` if set, else ``$XDG_CACHE_HOME/gpen-video/weights``
(``~/.cache/gpen-video/weights``). Downloads go to a temporary file in that folder and are renamed
only when complete. The sha256 of every downloaded file is written next to it
(``NAME.sha256``); a cached file whose bytes later differ from that record is refused.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.errors import DownloadError, WeightsError
from gpen_video.models.config import GpenConfig

_GPEN_OSS = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models"
_MODELSCOPE = (
    "https://www.modelscope.cn/api/v1/models/damo/cv_gpen_image-portrait-enhancement-hires"
    "/repo?Revision=master&FilePath="
)
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download/v0.1.0"
_GPEN_LICENCE = "GPEN weights: (c) Alibaba 2021, for academic and non-commercial use only"


@dataclass(frozen=True)
class WeightsSpec:
    """One downloadable weights file."""

    name: str  # registry name, e.g. "GPEN-BFR-512"
    kind: str  # "gpen" | "retinaface"
    url: str
    filename: str  # name in the cache folder
    sha256: str | None = None  # published checksum, where one exists
    size_bytes: int | None = None  # expected size, where known
    gpen: GpenConfig | None = None  # architecture, for kind == "gpen"
    detector_network: str | None = None  # facexlib network_name, for kind == "retinaface"
    licence: str = ""


REGISTRY: dict[str, WeightsSpec] = {
    spec.name: spec
    for spec in (
        WeightsSpec(
            "GPEN-BFR-256", "gpen", f"{_GPEN_OSS}/GPEN-BFR-256.pth", "GPEN-BFR-256.pth",
            gpen=GpenConfig(256, channel_multiplier=1, narrow=0.5), licence=_GPEN_LICENCE,
        ),
        WeightsSpec(
            "GPEN-BFR-512", "gpen", f"{_GPEN_OSS}/GPEN-BFR-512.pth", "GPEN-BFR-512.pth",
            gpen=GpenConfig(512, channel_multiplier=2, narrow=1.0), licence=_GPEN_LICENCE,
        ),
        WeightsSpec(
            "GPEN-BFR-1024", "gpen", f"{_MODELSCOPE}pytorch_model.pt", "GPEN-BFR-1024.pt",
            gpen=GpenConfig(1024, channel_multiplier=2, narrow=1.0), licence=_GPEN_LICENCE,
        ),
        WeightsSpec(
            "GPEN-BFR-2048", "gpen", f"{_MODELSCOPE}pytorch_model-2048.pt", "GPEN-BFR-2048.pt",
            gpen=GpenConfig(2048, channel_multiplier=2, narrow=1.0), licence=_GPEN_LICENCE,
        ),
        WeightsSpec(
            "retinaface-resnet50", "retinaface", f"{_FACEXLIB}/detection_Resnet50_Final.pth",
            "detection_Resnet50_Final.pth", detector_network="resnet50",
            licence="RetinaFace (biubug6/Pytorch_Retinaface), MIT",
        ),
        WeightsSpec(
            "retinaface-mobile0.25", "retinaface", f"{_FACEXLIB}/detection_mobilenet0.25_Final.pth",
            "detection_mobilenet0.25_Final.pth", detector_network="mobile0.25",
            sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
            size_bytes=1789735, licence="RetinaFace (biubug6/Pytorch_Retinaface), MIT",
        ),
    )
}


def get_spec(name: str) -> WeightsSpec:
    """The registry entry called ``name``.

    Raises:
        WeightsError: unknown name; the message lists the known ones.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise WeightsError(
            f"unknown model {name!r}: choose one of {known}, or pass the path of a weights file"
        ) from None


def registry_crop_size(name: str) -> int | None:
    """The crop size of registry GPEN ``name`` (its network's input size); ``None`` otherwise."""
    spec = REGISTRY.get(name)
    return spec.gpen.size if spec is not None and spec.gpen is not None else None


def default_cache_dir(env: Environment | None = None) -> Path:
    """``$GPEN_VIDEO_HOME/weights``, else ``$XDG_CACHE_HOME/gpen-video/weights`` (variables from
    ``env``, the CLI's :class:`~gpen_video.environment.Environment`; None reads this process's)."""
    env = env if env is not None else Environment.read()
    return env.home / "weights" if env.home is not None else env.user_cache / "weights"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verify_cached(spec: WeightsSpec, path: Path) -> None:
    """Check a cached file against the published checksum, or the one recorded at download.

    Raises:
        WeightsError: the bytes changed since download, or do not match the published sha256.
    """
    expected = spec.sha256
    record = _record_path(path)
    if expected is None and record.is_file():
        expected = record.read_text().split()[0]
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsError(
            f"{path} has sha256 {actual[:12]}…, expected {expected[:12]}…: the file changed "
            f"since it was downloaded; delete it and run `gpen-video download {spec.name}`"
        )


def download(spec: WeightsSpec, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Download ``spec`` into the cache (temp file, then rename) and record its sha256.

    Raises:
        DownloadError: the network or the server failed (retryable); the message names the URL
            and the offline alternative.
        WeightsError: the download does not match the published checksum.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.filename
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(spec.url, out, progress, spec.name, offline_flag(spec))
        actual = sha256_of(tmp)
        if spec.sha256 is not None and actual != spec.sha256:
            raise WeightsError(
                f"downloaded {spec.name} from {spec.url} has sha256 {actual[:12]}…, expected "
                f"{spec.sha256[:12]}…; the server sent another file: report it, and pass a "
                f"verified file with {offline_flag(spec)} meanwhile"
            )
        os.replace(tmp, target)
        _record_path(target).write_text(f"{actual}  {spec.filename}\n")
        return target
    finally:
        tmp.unlink(missing_ok=True)


def offline_flag(spec: WeightsSpec) -> str:
    """The CLI option that takes a local copy of ``spec``'s file."""
    return "--model PATH" if spec.kind == "gpen" else "--detector-weights PATH"


def _fetch(url: str, out, progress: bool, label: str, local_flag: str) -> None:
    """Stream ``url`` into the open binary file ``out`` with a tqdm bar."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "gpen-video"})
    offline_hint = f"or download it elsewhere and pass the file with {local_flag}"
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress,
                      leave=False) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {url}: HTTP {exc.code}; retry later, {offline_hint}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot download {url} ({reason}): no network? retry later, {offline_hint}"
        ) from None


def resolve_weights(
    name: str,
    path: Path | None = None,
    cache_dir: Path | None = None,
    download_missing: bool = False,
    progress: bool = True,
) -> Path:
    """Where the weights for registry entry ``name`` are on disk.

    An explicit ``path`` wins and is only checked for existence. Otherwise the cache is looked
    at, and the file is downloaded only if ``download_missing``.

    Raises:
        WeightsError: unknown name, missing explicit file, or not cached and downloads off; the
            message says where it looked and how to get the file.
        DownloadError: the download failed.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist")
        return path
    spec = get_spec(name)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = folder / spec.filename
    if cached.is_file():
        verify_cached(spec, cached)
        return cached
    if not download_missing:
        raise WeightsError(
            f"{spec.filename} ({spec.name}) is not in {folder}: run `gpen-video download "
            f"{spec.name}`, or pass a local copy with {offline_flag(spec)} (offline: download "
            f"{spec.url} elsewhere)"
        )
    return download(spec, folder, progress=progress)
