"""The ``gpen-video`` command: parse arguments, call the library, map errors to exit codes.

No processing happens here. ``gpen-video INPUT OUTPUT [options]`` is the ``run`` command; the
other commands are named first (``gpen-video bench …``). Each command lives in
``gpen_video/commands/NAME.py`` with ``configure(parser)`` and ``execute(args) -> int``; modules
are imported only when their command is used, so ``--help`` is fast.

Set ``GPEN_VIDEO_DEBUG=1`` to get a traceback instead of the one-line error. The environment is
read once, here (:class:`~gpen_video.environment.Environment`), and handed to the command:
``execute(args, env)``.

Logging: for the length of :func:`main`, the product's log records (the ``gpen_video`` logger
tree) go to stderr as ``gpen-video: …`` lines — warnings and errors by default (damaged input,
the one-time TensorRT engine build), also info with ``-v`` (which backend and geometry
``auto`` picked, and why), debug with ``-vv``, errors only with ``-q``. The library itself never
configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from gpen_video.environment import Environment
from gpen_video.errors import EXIT_FAILURE, EXIT_INTERRUPTED, GpenVideoError

# name -> (module, one-line summary). ``run`` is used when the first argument names no command.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("gpen_video.commands.run", "restore the faces in a video (the default command)"),
    "download": ("gpen_video.commands.download", "download official weights into the cache"),
    "export": ("gpen_video.commands.export", "export a GPEN checkpoint to ONNX (dynamic batch)"),
    "bench": ("gpen_video.commands.bench", "measure fps per GPU and per stage"),
    "engine": ("gpen_video.commands.engine", "build TensorRT engines ahead of time"),
    "stitch": ("gpen_video.commands.stitch", "join rendered segments and mux the source audio"),
    "farm": ("gpen_video.commands.farm", "render in chunks on a Ray cluster"),
    "measure": ("gpen_video.commands.measure",
                "temporal stability and detail of a result video against its source"),
}


def _epilog() -> str:
    lines = ["other commands (gpen-video COMMAND --help):"]
    lines += [f"  {name:<10}{summary}" for name, (_, summary) in COMMANDS.items() if name != "run"]
    lines.append("exit codes: 0 done, 1 other failure, 2 usage or bad input, 75 transient "
                 "(retry), 130 interrupted")
    return "\n".join(lines)


def build_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of command ``name`` and its module."""
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(module_name)
    prog = "gpen-video" if name == "run" else f"gpen-video {name}"
    parser = argparse.ArgumentParser(
        prog=prog,
        description=summary,
        epilog=_epilog() if name == "run" else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.configure(parser)
    return parser, module


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"gpen-video: {record.levelname.lower()}: {message}"
        if record.levelno < logging.INFO:
            return f"gpen-video: debug: {record.name}: {message}"
        return f"gpen-video: {message}"


def log_level(verbose: int = 0, quiet: bool = False) -> int:
    """``-q`` → ERROR, default → WARNING, ``-v`` → INFO, ``-vv`` → DEBUG."""
    if quiet:
        return logging.ERROR
    return (logging.WARNING, logging.INFO, logging.DEBUG)[min(max(verbose, 0), 2)]


def configure_logging(level: int, stream=None) -> Callable[[], None]:
    """Send ``gpen_video`` log records of ``level`` and above to ``stream`` (default: the
    current ``sys.stderr``); returns the function that undoes it."""
    logger = logging.getLogger("gpen_video")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_Formatter())
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    return undo


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script. Returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    name = args_list[0] if args_list and args_list[0] in COMMANDS else "run"
    if name != "run" or (args_list and args_list[0] == "run"):
        args_list = args_list[1:]
    env = Environment.read()
    debug = env.debug
    undo_logging = None
    try:
        parser, module = build_parser(name)
        # a command whose positionals sit on both sides of its options (``stitch SEG… --audio-from
        # IN OUT``) sets INTERMIXED_ARGS
        parse = (parser.parse_intermixed_args if getattr(module, "INTERMIXED_ARGS", False)
                 else parser.parse_args)
        args = parse(args_list)
        undo_logging = configure_logging(log_level(getattr(args, "verbose", 0) or 0,
                                                   bool(getattr(args, "quiet", False))))
        return int(module.execute(args, env) or 0)
    except GpenVideoError as exc:
        if debug:
            raise
        print(f"gpen-video: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("gpen-video: interrupted; nothing was written to the output path", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line unless debugging
        if debug:
            raise
        print(
            f"gpen-video: internal error: {type(exc).__name__}: {exc} "
            "(run again with GPEN_VIDEO_DEBUG=1 for a traceback, and report it)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    finally:
        if undo_logging is not None:
            undo_logging()


def console() -> None:
    """Entry point of the ``gpen-video`` script and ``python -m gpen_video``: ``main()``'s code.

    After Ctrl-C (code 130) the pipeline has already stopped its threads and removed its
    temporary output, so the process ends at once with ``os._exit``: interpreter teardown with
    torch loaded takes seconds (``benchmarks/RESULTS.md``, "Numbers behind design choices"), and an interrupted job must be
    gone within 2 s.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
