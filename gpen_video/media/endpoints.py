"""Which source and sink a job's paths need — the one place that knows there are two of each.

* Source: an image pattern (``%04d``, ``####``, ``@``), a folder or one image file →
  :class:`~gpen_video.media.sequence.ImageSequenceSource`; anything else →
  :class:`~gpen_video.media.source.VideoSource`. Both keep one contract (frames with index,
  pts and duration; a resolved range; fps, size, depth, colour tags, timecode), so the stages
  never learn which they read.
* Sink: an image-sequence source written to an image pattern or a still file →
  :class:`~gpen_video.media.sequence_sink.ImageSequenceSink` (alpha, depth, EXR attributes
  kept); every other case → :class:`~gpen_video.media.sink.VideoSink` (a movie, or a movie's
  frames as ``out_%06d.png``). With ``--matte``/``--patch`` the sink is wrapped in a
  :class:`~gpen_video.media.passes.LayeredSink`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpen_video.errors import UsageError
from gpen_video.options import RunOptions


def open_source(options: RunOptions) -> Any:
    """The job's input, opened (see the module docstring for which class).

    Raises: see :class:`VideoSource` and :class:`ImageSequenceSource`.
    """
    from gpen_video.media.sequence import ImageSequenceSource, is_image_input
    from gpen_video.media.source import VideoSource

    plate = options.plate
    if is_image_input(options.input):
        return ImageSequenceSource(options.input, options.range,
                                   errors="conceal" if plate.missing == "conceal" else "strict",
                                   fps=plate.fps, colorspace=plate.colorspace)
    if plate.fps is not None or plate.colorspace is not None:
        flag = "--fps" if plate.fps is not None else "--colorspace"
        raise UsageError(f"{flag} is for image sequences and EXR plates; {options.input.name} "
                         "is a movie (its own rate and colour tags are used)")
    errors = "strict" if options.on_damage == "fail" else "conceal"
    source = VideoSource(options.input, options.range, errors=errors)
    from gpen_video.media.alpha import AlphaVideoSource, needs_alpha_source

    if needs_alpha_source(source):  # ProRes 4444 with alpha: the plane is carried beside RGB
        source.close()
        source = AlphaVideoSource(options.input, options.range, errors=errors)
    return source


def _sequence_to_images(options: RunOptions, source: Any) -> bool:
    from gpen_video.media.sequence import ImageSequenceSource
    from gpen_video.media.sequence_sink import is_image_output

    return isinstance(source, ImageSequenceSource) and is_image_output(options.output)


def check_output(options: RunOptions, source: Any) -> None:
    """Every cheap check of the output and the passes (nothing is created).

    Raises:
        OutputError, UsageError: see the sinks' checks and :func:`passes.check_pass`.
    """
    from gpen_video.media.passes import check_pass

    if _sequence_to_images(options, source):
        from gpen_video.media.sequence_sink import check_sequence_sink

        if options.compare != "off":
            raise UsageError("--compare writes a review movie: give a movie output (e.g. "
                             "review.mov)")
        check_sequence_sink(options.output, source, options.encode, options.overwrite)
        _check_matte_layer(options, source)
    else:
        from gpen_video.media.sink import check_sink

        if getattr(source, "is_float", False):
            raise UsageError(f"{source.path.name} is a scene-linear EXR plate: write an EXR "
                             "sequence (out.####.exr) — a movie would clip it")
        check_sink(_movie_output(options), source, options.encode, options.overwrite)
    if options.passes.matte_layer is not None and not _sequence_to_images(options, source):
        raise UsageError("--matte-layer puts the matte into EXR output files: write an EXR "
                         "sequence (out.####.exr), or use --matte PATH")
    for kind, path in options.passes.paths().items():
        check_pass(kind, path, options.output, options.overwrite)
    if options.passes.paths() and options.compare != "off":
        raise UsageError("--matte/--patch describe the restored output: leave --compare off")


def _check_matte_layer(options: RunOptions, source: Any) -> None:
    name = options.passes.matte_layer
    if name is None:
        return
    if not getattr(source, "is_float", False):
        raise UsageError("--matte-layer is for EXR output; use --matte PATH for other formats")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"--matte-layer {name!r}: a layer name of letters, digits, _ or -")
    if f"{name}.Y" in source.extra_names:
        raise UsageError(f"--matte-layer {name}: the plate already has a channel {name}.Y")


def _movie_output(options: RunOptions) -> Path:
    """The output path as :class:`VideoSink` takes it: a ``####``/``@`` pattern (a movie's
    frames as images) in printf form."""
    from gpen_video.media.sequence import has_pattern, to_printf

    output = Path(options.output)
    return Path(to_printf(output)) if has_pattern(output) else output


def open_sink(options: RunOptions, source: Any, size: tuple[int, int] | None = None,
              recorder: Any = None) -> Any:
    """The job's output, opened (a temporary file/folder until ``close``); ``recorder``: a farm
    segment's manifest recorder (movie output only)."""
    from gpen_video.media.passes import LayeredSink, needs_layers

    if _sequence_to_images(options, source):
        from gpen_video.media.sequence_sink import ImageSequenceSink

        main = ImageSequenceSink(options.output, source, options.encode, options.overwrite,
                                 matte_layer=options.passes.matte_layer)
    else:
        from gpen_video.media.sink import VideoSink

        main = VideoSink(_movie_output(options), source, options.encode,
                         overwrite=options.overwrite, size=size, recorder=recorder)
    passes = options.passes.paths()
    if not needs_layers(source, passes) and options.passes.matte_layer is None:
        return main
    return LayeredSink(main, source, passes, options.overwrite)


def refuse_chunked(options: RunOptions, how: str) -> None:
    """Image sequences, stills and comp passes render in one process: chunked rendering
    (``--workers``, ``gpen-video farm``) stitches movie segments and knows neither.

    Raises:
        UsageError: the job is one of those.
    """
    from gpen_video.media.sequence import is_image_input

    if is_image_input(options.input) or options.passes.paths():
        what = "--matte/--patch" if options.passes.paths() else "image-sequence input"
        raise UsageError(f"{what} renders in one process: {how} is for movies; drop it")


def wants_layers(options: RunOptions, source: Any) -> bool:
    """True when the compose stage must hand each frame's face layer to the sink."""
    from gpen_video.media.passes import needs_layers

    return needs_layers(source, options.passes.paths())


__all__ = ["check_output", "open_sink", "open_source", "refuse_chunked", "wants_layers"]
