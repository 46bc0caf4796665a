"""gpen-video: restore the faces in a video with GPEN and change nothing else.

Importing this package is cheap: torch, PyAV, OpenCV and facexlib are imported only by the
modules that use them, so ``gpen-video --help`` answers at once.
"""

__version__ = "0.1.0"
