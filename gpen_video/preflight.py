"""What a run checks before it loads any model: the output path and codec, the weights files.

Everything here is cheap (file-system look-ups and the already opened input; no torch, no
network graph), so a mistake on the command line is reported at once instead of after seconds
of loading, and every missing weights file is named in one message with the flags that supply
it — an offline first run should not take one failed try per file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpen_video.errors import DownloadError, WeightsError
from gpen_video.options import RunOptions

log = logging.getLogger("gpen_video.preflight")


@dataclass(frozen=True)
class Missing:
    """A weights file the run needs and does not have."""

    what: str  # "GPEN-BFR-512" / "the detector (retinaface-resnet50)"
    filename: str  # the file to get
    flag: str  # the option that takes a local copy
    explicit: Path | None = None  # the path given on the command line, when it does not exist
    registry_name: str | None = None  # for `gpen-video download NAME`
    url: str | None = None


def check_before_loading(options: RunOptions, source: Any, need_restorer: bool = True,
                         need_detector: bool = True) -> None:
    """Raise the first cheap error of ``options`` against the opened ``source``, and make sure
    every weights file is there (downloaded now, when downloads are allowed).

    Raises:
        OutputError, UsageError: see :func:`gpen_video.media.sink.check_sink`.
        WeightsError: weights missing (all of them named, with the flags to pass).
        DownloadError: a download was allowed and failed (all missing files named).
    """
    from gpen_video.media.sink import check_sink

    check_sink(options.output, source, options.encode, options.overwrite)
    check_weights(options, need_restorer, need_detector)
    log.info("%s and %s checked; loading the models", options.input, options.output)


def check_weights(options: RunOptions, need_restorer: bool = True,
                  need_detector: bool = True) -> None:
    """Make sure every weights file the run needs is there (downloaded now when allowed).

    Raises:
        WeightsError, DownloadError: as :func:`check_before_loading`.
    """
    missing = missing_weights(options, need_restorer, need_detector)
    if missing:
        downloadable = [m for m in missing if m.explicit is None and m.registry_name is not None]
        allowed = options.model.download if need_restorer else options.detect.download
        if len(downloadable) < len(missing) or not allowed:
            raise WeightsError(missing_message(missing, downloads_off=not allowed))
        _download(missing, options)


def missing_weights(options: RunOptions, need_restorer: bool = True,
                    need_detector: bool = True) -> list[Missing]:
    """Every weights file the run needs that is neither given nor cached."""
    out = []
    if need_restorer:
        gpen = _missing_gpen(options)
        if gpen is not None:
            out.append(gpen)
    if need_detector:
        detector = _missing_detector(options)
        if detector is not None:
            out.append(detector)
    return out


def _missing_gpen(options: RunOptions) -> Missing | None:
    from gpen_video.models.weights import REGISTRY, default_cache_dir

    model = options.model
    if options.restore.backend == "identity" or model.random_weights:
        return None
    if model.checkpoint_path is not None:
        path = Path(model.checkpoint_path).expanduser()
        return None if path.is_file() else Missing(
            f"GPEN weights {path.name}", path.name, "--model PATH", explicit=path)
    spec = REGISTRY.get(model.name)
    if spec is None or spec.kind != "gpen":
        return None  # the loader says what the known names are
    folder = Path(model.cache_dir) if model.cache_dir is not None else default_cache_dir()
    if (folder / spec.filename).is_file():
        return None
    return Missing(spec.name, spec.filename, "--model PATH", registry_name=spec.name,
                   url=spec.url)


def _missing_detector(options: RunOptions) -> Missing | None:
    from gpen_video.faces.detect import weights_name
    from gpen_video.options import DETECTORS
    from gpen_video.models.weights import REGISTRY, default_cache_dir

    detect = options.detect
    if detect.weights is not None:
        path = Path(detect.weights).expanduser()
        return None if path.is_file() else Missing(
            f"detector weights {path.name}", path.name, "--detector-weights PATH",
            explicit=path)
    network = detect.network if detect.network in DETECTORS else "resnet50"
    spec = REGISTRY[weights_name(network)]
    folder = Path(detect.cache_dir) if detect.cache_dir is not None else default_cache_dir()
    if (folder / spec.filename).is_file():
        return None
    return Missing(f"the {network} face detector", spec.filename, "--detector-weights PATH",
                   registry_name=spec.name, url=spec.url)


def missing_message(missing: list[Missing], downloads_off: bool = True) -> str:
    """One line naming every missing file and what to do about each."""
    from gpen_video.models.weights import default_cache_dir

    parts = []
    for m in missing:
        if m.explicit is not None:
            parts.append(f"{m.explicit} ({m.flag.split()[0]}) does not exist")
        else:
            parts.append(f"{m.filename} ({m.what})")
    names = [m.registry_name for m in missing if m.explicit is None and m.registry_name]
    fixes = []
    if names:
        fixes.append(f"run `gpen-video download {' '.join(names)}`")
    flags = " ".join(f"{m.flag.split()[0]} /path/to/{m.filename}" for m in missing)
    fixes.append(f"pass local copies with {flags}")
    where = f" (not in {default_cache_dir()}" + (", downloads are off)" if downloads_off else ")")
    urls = [m.url for m in missing if m.url]
    offline = f"; offline, get them elsewhere: {' '.join(urls)}" if urls else ""
    return (f"{len(missing)} weights file{'s' if len(missing) > 1 else ''} missing: "
            f"{'; '.join(parts)}{where if names else ''}: {', or '.join(fixes)}{offline}")


def _download(missing: list[Missing], options: RunOptions) -> None:
    """Fetch every missing registry file; a failure names all the files still missing."""
    from gpen_video.models.weights import resolve_weights

    for k, m in enumerate(missing):
        cache = options.model.cache_dir if m.flag == "--model PATH" else options.detect.cache_dir
        try:
            resolve_weights(m.registry_name, cache_dir=cache, download_missing=True)
        except DownloadError:
            raise DownloadError(f"cannot download {m.filename} (no network?); "
                                f"{missing_message(missing[k:], downloads_off=False)}; "
                                "or retry later") from None
