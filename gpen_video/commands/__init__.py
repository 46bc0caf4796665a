"""One module per ``gpen-video`` command: ``configure(parser)`` and ``execute(args) -> int``."""
