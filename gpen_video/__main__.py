"""``python -m gpen_video`` is the same as the ``gpen-video`` command."""

from gpen_video.cli import console

console()
