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
import difflib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from gpen_video.environment import Environment
from gpen_video.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, GpenVideoError
from gpen_video.shutdown import SignalGuard, Terminated, finish, stopped_message

# name -> (module, one-line summary). ``run`` is used when the first argument names no command.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("gpen_video.commands.run", "restore the faces in a video (the default command)"),
    "analyse": ("gpen_video.commands.analyse",
                "detect and track faces once: a faces file for --faces-from and a contact "
                "sheet"),
    "download": ("gpen_video.commands.download", "download official weights into the cache"),
    "export": ("gpen_video.commands.export", "export a GPEN checkpoint to ONNX (dynamic batch)"),
    "bench": ("gpen_video.commands.bench", "measure fps per GPU and per stage"),
    "engine": ("gpen_video.commands.engine", "build TensorRT engines ahead of time"),
    "stitch": ("gpen_video.commands.stitch", "join rendered segments and mux the source audio"),
    "farm": ("gpen_video.commands.farm", "render in chunks on a Ray cluster"),
    "measure": ("gpen_video.commands.measure",
                "temporal stability and detail of a result video against its source"),
    "conform": ("gpen_video.commands.conform",
                "restore the source ranges an edit uses and relink its timeline (OTIO, EDL, "
                "FCP XML, AAF)"),
}


def _epilog() -> str:
    lines = ["other commands (gpen-video COMMAND --help):"]
    lines += [f"  {name:<10}{summary}" for name, (_, summary) in COMMANDS.items() if name != "run"]
    lines.append("exit codes: 0 done, 1 other failure, 2 usage or bad input, 75 transient "
                 "(retry), 130 interrupted (Ctrl-C), 143 stopped (SIGTERM), 129 hung up (SIGHUP)")
    return "\n".join(lines)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help as written, with each option's default appended where its help line does not state
    it (``(default: …)``); flags, counters and options without a default (None) are left as
    they are: their help says what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or default is None or default is False
                or default is argparse.SUPPRESS or "default" in text.lower()
                or isinstance(action, (argparse._CountAction, argparse._StoreConstAction,
                                       argparse._VersionAction))):
            return text
        shown = default if not isinstance(default, (list, tuple)) else " ".join(map(str, default))
        return f"{text} (default: {str(shown).replace('%', '%%')})"


def version_text() -> str:
    """What ``gpen-video --version`` prints."""
    from gpen_video import __version__

    return f"gpen-video {__version__}"


class _Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for a mistyped option (Python < 3.14 has none)."""

    def error(self, message: str) -> None:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            known = [o for o in self._option_string_actions if o.startswith("--")]
            hints = []
            for word in message[len(prefix):].split():
                flag = word.split("=", 1)[0]
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                if flag.startswith("-") and close:
                    hints.append(f"{flag}: did you mean {close[0]}?")
            if hints:
                message = f"{message} ({'; '.join(hints)})"
        super().error(message)


def command_suggestion(word: str) -> str | None:
    """The command ``word`` is probably a typo of, or None (it may be an input file name)."""
    if any(c in word for c in "./\\") or os.path.exists(word):
        return None
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    return close[0] if close else None


def usage_overview() -> str:
    """What ``gpen-video`` without arguments prints: the usage and every command."""
    lines = ["usage: gpen-video INPUT OUTPUT [options]    (restore the faces in a video)",
             "       gpen-video COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10}{summary}" for name, (_, summary) in COMMANDS.items()]
    lines.append("")
    lines.append("`gpen-video --help` lists the options of a run, `gpen-video COMMAND --help` "
                 "those of a command; `gpen-video --version` the version")
    return "\n".join(lines)


def build_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of command ``name`` and its module."""
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(module_name)
    prog = "gpen-video" if name == "run" else f"gpen-video {name}"
    parser = _Parser(
        prog=prog,
        description=summary,
        epilog=_epilog() if name == "run" else None,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text(),
                        help="print the version and exit")
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


def disk_full(exc: OSError, output: object = None) -> GpenVideoError | None:
    """The DiskFullError (exit 75) for a write that ran out of space anywhere below a command
    (ENOSPC, EDQUOT, EFBIG), naming the file's folder (else the output's); None for other
    OS errors."""
    from pathlib import Path

    from gpen_video.media.paths import SPACE_ERRNOS, write_error

    if exc.errno not in SPACE_ERRNOS:
        return None
    target = Path(exc.filename) if exc.filename else Path(output) if output else Path("out")
    folder = target.parent if str(target.parent) else Path(".")
    return write_error(exc, folder, f"writing {target if exc.filename or output else 'the output'}"
                                    " failed")


def report(exc: BaseException, output: object = None) -> tuple[str, int]:
    """The one line and the exit code for an exception that ended a command: the product's
    errors keep their code, signals give 130/143/129, a full disk 75, anything else is a bug
    (1)."""
    if isinstance(exc, GpenVideoError):
        return f"gpen-video: error: {exc}", exc.exit_code
    if isinstance(exc, (KeyboardInterrupt, Terminated)):
        return stopped_message(exc), (exc.exit_code if isinstance(exc, Terminated)
                                      else EXIT_INTERRUPTED)
    if isinstance(exc, OSError):
        error = disk_full(exc, output)
        if error is not None:
            return f"gpen-video: error: {error}", error.exit_code
    return (f"gpen-video: internal error: {type(exc).__name__}: {exc} "
            "(run again with GPEN_VIDEO_DEBUG=1 for a traceback, and report it)"), EXIT_FAILURE


def main(argv: Sequence[str] | None = None, signals: SignalGuard | None = None) -> int:
    """Entry point of the console script. Returns the process exit code.

    ``signals``: the process's :class:`~gpen_video.shutdown.SignalGuard`; a command module's
    ``SHUTDOWN_GRACE`` (seconds) replaces its watchdog delay.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        print(usage_overview(), file=sys.stderr)
        return EXIT_USAGE
    if args_list[0] in ("--version", "-V"):
        print(version_text())
        return 0
    typo = None if args_list[0] in COMMANDS else command_suggestion(args_list[0])
    if typo is not None:
        print(f"gpen-video: error: {args_list[0]!r} is neither a command nor an existing input "
              f"file: did you mean `gpen-video {typo}`? (commands: {', '.join(COMMANDS)})",
              file=sys.stderr)
        return EXIT_USAGE
    name = args_list[0] if args_list[0] in COMMANDS else "run"
    if name != "run" or (args_list and args_list[0] == "run"):
        args_list = args_list[1:]
    env = Environment.read()
    debug = env.debug
    undo_logging = None
    args = None
    try:
        parser, module = build_parser(name)
        if signals is not None:
            signals.grace = float(getattr(module, "SHUTDOWN_GRACE", signals.grace))
        # a command whose positionals sit on both sides of its options (``stitch SEG… --audio-from
        # IN OUT``) sets INTERMIXED_ARGS
        parse = (parser.parse_intermixed_args if getattr(module, "INTERMIXED_ARGS", False)
                 else parser.parse_args)
        args = parse(args_list)
        undo_logging = configure_logging(log_level(getattr(args, "verbose", 0) or 0,
                                                   bool(getattr(args, "quiet", False))))
        return int(module.execute(args, env) or 0)
    except (Exception, KeyboardInterrupt, Terminated) as exc:
        if debug:
            raise
        line, code = report(exc, getattr(args, "output", None))
        print(line, file=sys.stderr)
        return code
    finally:
        if undo_logging is not None:
            undo_logging()


def console() -> None:
    """Entry point of the ``gpen-video`` script and ``python -m gpen_video``: ``main()``'s code.

    Signals become exceptions for the length of ``main()`` and the process ends through
    :func:`gpen_video.shutdown.finish`: after an error or a signal, and whenever a thread is
    still running, with ``os._exit`` once the temporary output is removed and the streams are
    flushed — interpreter teardown with a thread inside ONNX Runtime or torch aborts the process
    (exit 134), and with torch loaded it takes seconds (``benchmarks/RESULTS.md``, "Numbers behind
    design choices") when an interrupted job must be gone at once.
    """
    code = EXIT_FAILURE
    _report_native_crashes()
    with SignalGuard() as signals:
        try:
            code = main(signals=signals)
        except (KeyboardInterrupt, Terminated) as exc:  # arrived just after main() returned
            code = exc.exit_code if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        signals.ignore_further()
        finish(code)


def _report_native_crashes() -> None:
    """A crash inside a native library (SIGSEGV, SIGABRT from the C allocator, SIGBUS, SIGFPE,
    SIGILL) prints every thread's Python stack to stderr before the process dies: which stage was
    where, for the bug report, instead of a lone line such as ``munmap_chunk(): invalid
    pointer``. SIGINT, SIGTERM and SIGHUP stay :class:`SignalGuard`'s."""
    import faulthandler

    try:
        faulthandler.enable(all_threads=True)
    except (AttributeError, OSError, ValueError):  # stderr closed or not a file: no report
        pass
