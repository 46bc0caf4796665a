"""``python -m gpen_video`` is the same as the ``gpen-video`` command."""

import sys

from gpen_video.cli import main

sys.exit(main())
