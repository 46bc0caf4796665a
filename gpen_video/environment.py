"""The environment variables gpen-video reads, read in one place into a frozen object.

=========================== ===============================================================
``GPEN_VIDEO_DEBUG=1``      a traceback instead of the one-line error (the CLI)
``GPEN_VIDEO_ENGINES``      the engine cache folder (exported ONNX files, TensorRT plans)
``GPEN_VIDEO_HOME``         ``$GPEN_VIDEO_HOME/weights`` and ``…/engines`` instead of the
                            user cache
``XDG_CACHE_HOME``          the user cache (default ``~/.cache``): ``gpen-video/weights`` and
                            ``gpen-video/engines`` under it
``GPEN_VIDEO_GATE_IMAGES``  a folder of face crops for the quality gate instead of the ones
                            shipped in the package
``OMP_NUM_THREADS``         torch threads per process of ``--workers N`` (default: the
                            cores divided among them)
``CUDA_VISIBLE_DEVICES``    the GPUs ``--workers N`` hands out, one per process
=========================== ===============================================================

The CLI reads them once (:meth:`Environment.read`) and hands the object to the command, which
passes it to what chooses a default folder
(:func:`gpen_video.engine.paths.default_engine_dir`,
:func:`gpen_video.models.weights.default_cache_dir`,
:func:`gpen_video.engine.gate.default_gate_dir`) and puts the folders into the options.
A library caller that passes no :class:`Environment` (or an explicit folder) gets the same
defaults: those functions then read the environment of the calling process themselves (which is
also what a farm worker on another machine must do). Nothing else in the package reads
``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Environment:
    """What the environment says (module docstring); paths expanded (``~``)."""

    debug: bool = False  # GPEN_VIDEO_DEBUG=1
    engines: Path | None = None  # GPEN_VIDEO_ENGINES
    home: Path | None = None  # GPEN_VIDEO_HOME
    cache_home: Path | None = None  # XDG_CACHE_HOME (None: ~/.cache)
    gate_images: Path | None = None  # GPEN_VIDEO_GATE_IMAGES
    omp_threads: int | None = None  # OMP_NUM_THREADS (a positive number, else None)
    cuda_visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES, as set

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> "Environment":
        """The variables of ``environ`` (default: this process's ``os.environ``)."""
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value).expanduser() if value else None

        threads = env.get("OMP_NUM_THREADS", "")
        return cls(debug=env.get("GPEN_VIDEO_DEBUG") == "1", engines=path("GPEN_VIDEO_ENGINES"),
                   home=path("GPEN_VIDEO_HOME"), cache_home=path("XDG_CACHE_HOME"),
                   gate_images=path("GPEN_VIDEO_GATE_IMAGES"),
                   omp_threads=int(threads) if threads.isdigit() and int(threads) > 0 else None,
                   cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"))

    @property
    def user_cache(self) -> Path:
        """``$XDG_CACHE_HOME/gpen-video``, else ``~/.cache/gpen-video``."""
        root = self.cache_home if self.cache_home is not None else Path.home() / ".cache"
        return root / "gpen-video"
