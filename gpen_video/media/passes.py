"""Comp passes beside the output: ``--matte`` (the paste alpha of every frame) and ``--patch``
(the restored faces only, premultiplied RGBA), frame-exact with the output.

Both come from the frame's :class:`~gpen_video.compose.layer.FaceLayer` as the output was made
from it (for EXR plates, the plate-space layer :class:`ImageSequenceSink` applied, so values
kept at their input have matte 0 there). Files are numbered like the output's (an image-sequence
output's numbers, or a movie's ``--start-number``/range start).

Formats, by the pass's file name:

* matte ``.png``/``.tif`` pattern: 16-bit grey, ``ceil(alpha·65535)`` (a touched pixel is
  never 0); ``.exr`` pattern: float32 channel ``Y``, the alpha itself; ``.mkv``: FFV1 gray16le.
* patch ``.png``/``.tif`` pattern: 16-bit premultiplied RGBA (rounded); ``.exr`` pattern:
  float32 premultiplied RGBA in the plate's space; ``.mov``: ProRes 4444 with alpha.

:class:`LayeredSink` wraps the output sink and the passes into one sink for the encode stage:
``write(frame, image, layer)``; ``close``/``abort`` reach all of them.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from gpen_video.errors import GpenVideoError, OutputError, UsageError
from gpen_video.media import paths
from gpen_video.media.sequence import has_pattern, to_printf

PASS_KINDS = ("matte", "patch")
_SEQUENCE_SUFFIXES = (".png", ".tif", ".tiff", ".exr")
_MOVIE = {"matte": (".mkv", "ffv1", "gray16le"), "patch": (".mov", "prores_ks", "yuva444p10le")}


def check_pass(kind: str, path: str | os.PathLike[str], output: str | os.PathLike[str],
               overwrite: bool = False) -> Path:
    """Raise the first problem of a pass's file name; the path.

    Raises:
        UsageError: a file type the pass cannot be written as, or the output's own name.
        OutputError: the folder is missing or not writable, the file exists without ``-y``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    movie = _MOVIE[kind][0]
    if has_pattern(path):
        if suffix not in _SEQUENCE_SUFFIXES:
            raise UsageError(f"--{kind} {path.name}: a {kind} sequence is .png, .tif or .exr")
    elif suffix != movie:
        raise UsageError(f"--{kind} {path.name}: give a pattern (e.g. {kind}.####.exr or "
                         f"{kind}.####.png) or a {movie} movie")
    if paths.same_file(path, output) or str(path) == str(output):
        raise UsageError(f"--{kind} {path.name} is the output's own name")
    paths.check_output(path, None, overwrite, image_sequence=has_pattern(path))
    return path


class PassWriter:
    """One pass (``matte`` or ``patch``) written frame by frame (module docstring)."""

    def __init__(self, kind: str, path: str | os.PathLike[str], size: tuple[int, int],
                 fps: Fraction, time_base: Fraction, overwrite: bool = False,
                 linear: bool = False) -> None:
        self.kind = kind
        self.path = Path(path)
        self.width, self.height = size
        self.overwrite = overwrite
        self.linear = linear  # the layer is in a float plate's space (EXR patches)
        self.sequence = has_pattern(self.path)
        self.written = 0
        self._out = None
        if self.sequence:
            self._temp = paths.temp_dir_for(self.path)
            self._printf = to_printf(self.path.name)
        else:
            self._temp = paths.temp_file_for(self.path)
            _, encoder, pix_fmt = _MOVIE[kind]
            self._out = av.open(str(self._temp), "w", format="matroska" if kind == "matte"
                                else "mov")
            options = {"profile": "4444", "vendor": "apl0"} if kind == "patch" else \
                {"level": "3"}
            self._stream = self._out.add_stream(encoder, rate=fps, options=options)
            self._stream.width, self._stream.height = size
            self._stream.pix_fmt = pix_fmt
            self._stream.codec_context.time_base = time_base
            self._stream.time_base = time_base

    def write(self, number: int, pts: int, time_base: Fraction, layer: Any) -> None:
        """The pass of one output frame (``layer`` None: nothing pasted)."""
        from gpen_video.compose.layer import FaceLayer
        from gpen_video.media.stills import Picture, write_picture

        if layer is None:
            layer = FaceLayer(self.height, self.width)
        exr = self.path.suffix.lower() == ".exr"
        if self.kind == "matte":
            alpha = layer.matte()
            if exr:
                image = None
                self._write_exr(number, {"Y": alpha})
                return
            image = np.minimum(np.ceil(alpha * np.float32(65535)), 65535).astype(np.uint16)
            picture, fmt = None, "gray16le"
        else:
            patch = layer.patch()
            if exr:
                self._write_exr(number, {c: patch[..., i] for i, c in enumerate("RGBA")})
                return
            if self.linear:
                raise UsageError("--patch of an EXR plate is written as EXR (patch.####.exr)")
            image = np.rint(np.clip(patch, 0, 1) * np.float32(65535)).astype(np.uint16)
            picture, fmt = Picture(np.ascontiguousarray(image[..., :3]),
                                   np.ascontiguousarray(image[..., 3])), "rgba64le"
        if self.sequence:
            target = self._temp / (self._printf % number)
            if picture is None:
                _write_grey(target, image)
            else:
                write_picture(target, picture)
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
            frame = frame.reformat(format=self._stream.pix_fmt)
            frame.pts, frame.time_base = pts, time_base
            self._out.mux(self._stream.encode(frame))
        self.written += 1

    def _write_exr(self, number: int, channels: dict[str, np.ndarray]) -> None:
        import OpenEXR

        target = self._temp / (self._printf % number)
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        OpenEXR.File(header, {k: np.ascontiguousarray(v, np.float32)
                              for k, v in channels.items()}).write(str(target))
        self.written += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.mux(self._stream.encode(None))
            self._out.close()
            self._out = None
        if self.sequence:
            paths.finalize_sequence(self._temp, self.path.parent, self.overwrite)
        else:
            paths.finalize_file(self._temp, self.path, self.overwrite)
        self._temp = None

    def abort(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: BLE001 - the file is deleted next
                pass
            self._out = None
        paths.remove_quietly(self._temp)
        self._temp = None


def _write_grey(path: Path, image: np.ndarray) -> None:
    """A 16-bit grey PNG/TIFF of H×W uint16."""
    encoder, fmt = ("png", "gray16be") if path.suffix.lower() == ".png" else \
        ("tiff", "gray16le")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="gray16le")
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream(encoder, rate=25)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], fmt
        converted = frame.reformat(format=fmt)
        converted.pts = 0
        out.mux(stream.encode(converted))
        out.mux(stream.encode(None))


class LayeredSink:
    """The output sink plus its passes, as one sink for the encode stage."""

    def __init__(self, main: Any, source: Any, passes: dict[str, Path],
                 overwrite: bool = False) -> None:
        self.main = main
        self.source = source
        self.takes_layer = hasattr(main, "written_layer")  # ImageSequenceSink
        linear = bool(getattr(source, "is_float", False))
        size = (source.width, source.height)
        self.passes: list[PassWriter] = []
        try:
            for kind, path in passes.items():
                self.passes.append(PassWriter(kind, path, size, source.fps, source.time_base,
                                              overwrite, linear))
        except BaseException:
            self.abort()
            raise

    @property
    def frames_written(self) -> int:
        return self.main.frames_written

    def _number(self, frame: Any) -> int:
        if self.takes_layer:
            return self.main.number_for(frame.index)
        first = self.source.range.start if self.source.range is not None else 0
        return self.main.start_number + frame.index - first

    def write(self, frame: Any, image: np.ndarray | None = None, layer: Any = None) -> bool:
        """Write the output frame, then its passes (same number, same timing)."""
        if self.takes_layer:
            done = self.main.write(frame, image, layer)
            layer = self.main.written_layer
        else:
            done = self.main.write(frame, image)
        if not done:
            return False
        try:
            for writer in self.passes:
                writer.write(self._number(frame), frame.pts, frame.time_base, layer)
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise paths.write_error(exc, Path(self.passes[0].path).parent,
                                    "writing a comp pass failed") from None
        return True

    def video_report(self) -> str:
        text = self.main.video_report()
        if self.passes:
            text += "; passes: " + ", ".join(f"{p.kind} {p.path.name}" for p in self.passes)
        return text

    def tracks_report(self) -> str:
        return self.main.tracks_report()

    def close(self) -> Path:
        try:
            for writer in self.passes:
                writer.close()
            path = self.main.close()
        except GpenVideoError:
            self.abort()
            raise
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise OutputError(f"writing the comp passes failed ({exc})") from None
        return path

    def abort(self) -> None:
        for writer in self.passes:
            writer.abort()
        if self.main is not None:
            self.main.abort()

    def remove_partial(self) -> None:
        for writer in self.passes:
            paths.remove_quietly(writer._temp)
        self.main.remove_partial()


def needs_layers(source: Any, passes: dict[str, Path]) -> bool:
    """True when the compose stage must hand on each frame's face layer."""
    return bool(passes) or bool(getattr(source, "is_float", False))


__all__ = ["PASS_KINDS", "LayeredSink", "PassWriter", "check_pass", "needs_layers"]
