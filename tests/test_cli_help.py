"""Every option of every command explains itself: a help line, its default shown, grouped by
what the user is doing; ``--version``. Walks the real parsers (``gpen_video.cli.build_parser``),
so an option added without help fails here."""

from __future__ import annotations

import argparse

import pytest

from gpen_video import __version__
from gpen_video.cli import COMMANDS, build_parser, main


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of every command and sub-command (``engine build`` …)."""
    out = []
    for name in COMMANDS:
        parser, _ = build_parser(name)
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                out += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return out


PARSERS = _parsers()


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings
            and not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_every_option_has_a_help_line(name, parser):
    bare = [a.option_strings[-1] for a in _options(parser)
            if not a.help or a.help == argparse.SUPPRESS or len(a.help.strip()) < 8]
    assert bare == [], f"gpen-video {name}: options without help: {bare}"
    for action in parser._actions:  # positionals too
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"gpen-video {name}: {action.dest} has no help"


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_every_default_is_shown(name, parser):
    """An option with a default (not a flag, not None) shows it in its help line."""
    formatter = parser._get_formatter()
    hidden = []
    for action in _options(parser):
        if (action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0
                or isinstance(action, argparse._CountAction)):
            continue
        if "default" not in formatter._expand_help(action).lower():
            hidden.append(action.option_strings[-1])
    assert hidden == [], f"gpen-video {name}: defaults not shown: {hidden}"
    parser.format_help()  # every help string formats (a stray % would raise here)


def test_run_options_are_grouped_by_what_the_user_is_doing():
    parser, _ = build_parser("run")
    group_of = {a.option_strings[-1]: g.title for g in parser._action_groups
                for a in g._group_actions if a.option_strings}
    expect = {"--frames": "input and frame range", "--on-damage": "input and frame range",
              "--detector": "faces", "--model": "restoration", "--strength": "restoration",
              "--temporal": "temporal", "--smooth": "temporal", "--codec": "output and encoding",
              "--overwrite": "output and encoding", "--device": "machine",
              "--workers": "machine", "--progress": "reporting"}
    for option, title in expect.items():
        assert group_of[option].startswith(title), (option, group_of[option])


@pytest.mark.parametrize("argv", [["--version"], ["bench", "--version"],
                                  ["measure", "--version"]])
def test_version_prints_the_version(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's version action, inside a command's parser
        code = exc.code
    assert code == 0
    assert capsys.readouterr().out.strip() == f"gpen-video {__version__}"
