"""Image sequences and stills out, from an :class:`~gpen_video.media.sequence.ImageSequenceSource`:
every file keeps what its input file held.

* Names: the output pattern (``out.####.exr``, ``out.%04d.png``, ``@``) numbered like the input
  (``shot.1001`` → ``out.1001``), or from ``EncodeOptions.start_number`` on; a still goes to
  the one file named.
* Pixels: the restored RGB at the input's depth (8/16-bit PNG and TIFF, 10/12/16-bit DPX at
  the input DPX's own packing, JPEG 8-bit); alpha and EXR extra channels bit for bit; EXR in
  the plate's half/float type with its header (compression, chromaticities, frame rate,
  timecode, custom attributes) as read.
* EXR plates are rebuilt from the stored plate and the frame's
  :class:`~gpen_video.compose.layer.FaceLayer` in the plate's own space
  (:func:`~gpen_video.media.scene_linear.blend_linear`): a pixel no face touched keeps its
  exact bits; values the display encoding cannot hold keep theirs and are counted.
* Safety as :class:`~gpen_video.media.sink.VideoSink`: files go to a hidden temporary folder
  beside the target and move into place only when all are written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import av.error
import numpy as np

from gpen_video.errors import GpenVideoError, OutputError, UsageError
from gpen_video.media import paths
from gpen_video.media.sequence import PlateFrame, has_pattern, to_printf
from gpen_video.media.stills import (STILL_SUFFIXES, Picture, exact_exr_header, suffix_codec,
                                     write_picture)
from gpen_video.options import EncodeOptions

log = logging.getLogger("gpen_video.media")

_NAMES = {"png": "PNG", "mjpeg": "JPEG", "tiff": "TIFF", "dpx": "DPX", "exr": "EXR"}


def is_image_output(path: str | os.PathLike[str]) -> bool:
    """True for a pattern or a single still file name (``.png``, ``.exr`` …)."""
    path = Path(path)
    return path.suffix.lower() in STILL_SUFFIXES and (has_pattern(path) or not path.is_dir())


def check_sequence_sink(path: str | os.PathLike[str], source: Any,
                        options: EncodeOptions | None = None, overwrite: bool = False) -> str:
    """Every check :class:`ImageSequenceSink` makes before writing; returns the codec.

    Raises:
        UsageError: a codec that cannot hold the source (float into PNG, alpha into JPEG), a
            still written from a sequence, a sequence into one file name, a --codec/--crf.
        OutputError: the folder is missing or not writable; the output (first file) exists
            without ``overwrite``; the output would overwrite an input file.
    """
    path = Path(path)
    options = options or EncodeOptions()
    codec = suffix_codec(path)
    if codec is None:
        raise UsageError(f"output {path.name}: use a .png, .jpg, .tif, .dpx or .exr name")
    if options.codec is not None or options.crf is not None or options.preset is not None \
            or options.pix_fmt is not None:
        raise UsageError("--codec, --crf, --preset and --pix-fmt are for movies: an image "
                         "output follows its file name and the input's depth")
    pattern = has_pattern(path)
    if not pattern and source.output_frame_count > 1:
        raise UsageError(f"output {path.name} names one file but the input has "
                         f"{source.output_frame_count} frames: use a pattern like "
                         f"{path.stem}.####{path.suffix}")
    if source.is_float and codec != "exr":
        raise UsageError(f"{source.path.name} is a scene-linear EXR plate: write EXR "
                         f"({path.stem}.####.exr); {_NAMES[codec]} would clip it")
    if not source.is_float and codec == "exr":
        raise UsageError(f"EXR output is for EXR plates; {source.path.name} is "
                         f"{_NAMES.get(source.codec_name, source.codec_name)}: write .png, "
                         ".tif or .dpx to keep its depth")
    if codec == "mjpeg" and source.has_alpha:
        raise UsageError(f"{source.path.name} has alpha and JPEG cannot hold it: write .png, "
                         ".tif or .exr")
    paths.check_output(path, None, overwrite, image_sequence=pattern)
    sink = ImageSequenceSink.__new__(ImageSequenceSink)
    sink.path, sink.source, sink.options = path, source, options
    sink.pattern = pattern
    for index in _output_indices(source):
        target = sink.target(index)
        if paths.same_file(target, source.files.name_of(source.number_of(index))):
            raise OutputError(f"output {target} is an input file: choose another name")
        if target.exists() and not overwrite:
            raise OutputError(f"output {target} already exists: use -y (--overwrite) to "
                              "replace it")
        break  # the first file is checked here; the rest when the files are moved in place
    if codec == "mjpeg" and source.image_dtype == np.uint16:
        log.warning("%s: JPEG holds 8 bits; the %d-bit input is reduced", path.name,
                    source.bit_depth)
    return codec


def _output_indices(source: Any) -> range:
    rng = source.range
    return range(rng.start, rng.end + 1) if rng is not None else range(source.frame_count)


class ImageSequenceSink(paths.PartialOutput):
    """Write the frames of an image-sequence source (module docstring). ``write(frame, image,
    layer=None)`` like :meth:`VideoSink.write`; ``layer`` is needed for EXR plates.

    Raises (constructor): see :func:`check_sequence_sink`.
    """

    def __init__(self, path: str | os.PathLike[str], source: Any,
                 options: EncodeOptions | None = None, overwrite: bool = False,
                 matte_layer: str | None = None) -> None:
        self.path = Path(path)
        self.matte_layer = matte_layer  # EXR: the matte also as channel NAME.Y
        self.source = source
        self.options = options or EncodeOptions()
        self.overwrite = overwrite
        self.codec = check_sequence_sink(self.path, source, self.options, overwrite)
        self.pattern = has_pattern(self.path)
        self.frames_written = 0
        self.kept_pixels = 0  # EXR: face pixels kept at input value (outside the encoding)
        self.kept_peak = 0.0
        self.written_layer: Any = None  # the last frame's layer as applied (passes use it)
        self.compression_note: str | None = None  # EXR: DWA written as ZIP (stills.py)
        self._closed = False
        self._temp = paths.temp_dir_for(self.path) if self.pattern else \
            paths.temp_file_for(self.path)
        self._printf = to_printf(self.path.name) if self.pattern else None

    def target(self, index: int) -> Path:
        """The file frame ``index`` (the source's position) is written to."""
        if not self.pattern:
            return self.path
        number = self.number_for(index)
        return self.path.parent / (to_printf(self.path.name) % number)

    def number_for(self, index: int) -> int:
        """The output file number of source position ``index``."""
        start = self.options.start_number
        if start is None:
            return self.source.number_of(index)
        first = self.source.range.start if self.source.range is not None else 0
        return start + index - first

    def write(self, frame: PlateFrame, image: np.ndarray | None = None,
              layer: Any = None) -> bool:
        """Write one frame; False (nothing written) for frames outside the output range.

        Raises:
            ValueError: an image of another shape or dtype than the source's frames.
            OutputError, DiskFullError: the disk failed (the partial output is deleted).
        """
        if self._closed:
            raise ValueError("write() after close()")
        if not frame.in_range:
            return False
        image = frame.image if image is None else image
        if image.shape != frame.image.shape or image.dtype != frame.image.dtype:
            raise ValueError(f"image must be {frame.image.shape} {frame.image.dtype}, got "
                             f"{image.shape} {image.dtype}")
        self.written_layer = layer
        rgb = self._plate(frame, layer) if frame.plate is not None else image
        header = frame.header
        if self.codec == "exr":
            header, self.compression_note = exact_exr_header(header)
        extra = frame.extra
        if self.matte_layer is not None and frame.plate is not None:
            from gpen_video.compose.layer import FaceLayer

            applied = self.written_layer or FaceLayer(*frame.plate.shape[:2])
            extra = {**extra, f"{self.matte_layer}.Y": applied.matte()}
        picture = Picture(rgb=rgb, alpha=frame.alpha, codec=self.codec, header=header,
                          extra=extra, parts=getattr(frame, "parts", []),
                          part=getattr(frame, "part", 0))
        same_kind = self.codec == self.source.codec_name
        pix_fmt = self.source.file_pix_fmt if (same_kind and self.codec == "dpx") else None
        name = self.path.name if not self.pattern else self.target(frame.index).name
        where = self._temp if not self.pattern else self._temp / name
        try:
            write_picture(where, picture, self.codec, pix_fmt=pix_fmt)
        except (av.error.FFmpegError, OSError) as exc:
            self._discard()
            raise paths.write_error(exc, self.path.parent, f"writing {where.name} failed") \
                from None
        self.frames_written += 1
        return True

    def _plate(self, frame: PlateFrame, layer: Any) -> np.ndarray:
        """The EXR plate with the faces blended in its own space; ``written_layer`` becomes
        the layer as applied (plate space, coverage 0 where the input value was kept)."""
        from gpen_video.media.scene_linear import blend_linear, plate_layer

        out = frame.plate.copy()
        if layer is None:
            self.written_layer = None
            return out
        linear, kept, peak = plate_layer(layer, frame.plate, self.source.encoding)
        blend_linear(out, linear)
        self.kept_pixels += kept
        self.kept_peak = max(self.kept_peak, peak)
        self.written_layer = linear
        return out

    def video_report(self) -> str:
        src = self.source
        kind = f"{_NAMES.get(src.codec_name, src.codec_name)} {src.file_pix_fmt}"
        text = f"{kind}{' + alpha' if src.has_alpha else ''} → {_NAMES[self.codec]}"
        if src.is_float:
            text += f"; {src.encoding.describe()}"
            if self.kept_pixels:
                text += (f"; {self.kept_pixels} face pixels kept at their input value (the "
                         f"display encoding cannot hold them; largest |value| "
                         f"{self.kept_peak:.4g})")
            else:
                text += "; nothing clipped"
            if self.compression_note:
                text += f"; {self.compression_note}"
        if not src.still:
            text += f"; fps {float(src.fps):.6g} from {src.fps_source}"
        return text

    def tracks_report(self) -> str:
        return "none (image sequence)"

    def close(self) -> Path:
        """Move the written files into place (all at once). Idempotent.

        Raises:
            OutputError: no frame was written, or a target appeared without ``overwrite``.
        """
        if self._closed:
            return self.path
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames were written to {self.path}: nothing to save")
            if self.pattern:
                paths.finalize_sequence(self._temp, self.path.parent, self.overwrite)
            else:
                paths.finalize_file(self._temp, self.path, self.overwrite)
            self._temp = None
        except GpenVideoError:
            self._discard()
            raise
        except OSError as exc:
            self._discard()
            raise paths.write_error(exc, self.path.parent, f"writing {self.path} failed") \
                from None
        self._closed = True
        return self.path
