"""``gpen-video conform``: restore what an edit uses.

Reads a timeline (OpenTimelineIO, and through its adapters CMX 3600 EDL, FCP 7 XML, AAF), works
out which frames of which media files the edit shows, renders only those frames (with handles)
through the product's frame-range machinery, and hands back the timeline relinked to the
restored media.

Modules, in the order a conform runs:

* :mod:`.timeline` — reading and writing timelines (OTIO adapters found by file type; a missing
  adapter is one line naming the package to install);
* :mod:`.plan` — what each clip shows and the merged ranges to render (pure functions);
* :mod:`.media` — finding the files (``--search-path``), their facts, and the checks made before
  anything renders;
* :mod:`.render` — each range once, frame-exact, in this process or with ``--workers``
  (:mod:`gpen_video.farm.local`), resumable;
* :mod:`.relink` — the restored timeline (OTIO multiple media references);
* :mod:`.report` — per clip and per media, and the saving;
* :mod:`.run` — :func:`conform`, the whole command as a library call.

Needs the ``editorial`` extra (``pip install "gpen-video[editorial]"``).
"""
