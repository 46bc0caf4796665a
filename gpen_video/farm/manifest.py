"""Segments that prove what they are: the manifest beside every farm segment, and its checks.

Every segment a farm job writes (``gpen-video … --segment``, ``--workers``, ``gpen-video farm``)
gets a manifest beside it, ``SEGMENT.json`` (``seg-000000-000023.mkv.json``), written by
:class:`SegmentRecorder` from inside the sink and renamed into place (temp file + rename) just
before the segment itself is renamed into place. It holds:

* ``source``: the identity of the clip the segment was rendered from (:func:`source_identity`):
  coded size, frame rate, time base, the frame count the container declares, the file's size and
  a sha256 of three 1 MiB samples of its bytes (start, middle, end) — constant cost whatever the
  clip's length, and different for any other clip (another encode differs from its first bytes);
* ``frames``: the source frames it holds (first, last);
* ``options``: the options that change pixels (:func:`pixel_options`: model, restore backend and
  precision, detection, tracking, smoothing, blending, temporal, faces, compare — not devices,
  threads, batch sizes or folders) and their digest;
* ``version``: the product version that rendered it;
* ``packets``: every video packet's sha1, in decode order, with its pts;
* ``pictures``: the sha1 of every frame's picture as the encoder received it (the visible bytes of
  each plane, FFmpeg's framemd5 idea), in presentation order, with its source frame index — for
  lossless segment codecs (FFV1, PNG), whose decoded picture is that picture bit for bit; lossy
  segment codecs (ProRes, DNxHR, H.264 closed-GOP segments) carry packet checksums only.

The stitch checks segments at one of three levels (``--verify``, :data:`VERIFY_LEVELS`):

* ``none``: timestamps and continuity only (what a stitch checked before manifests);
* ``packets``: the manifest must be there and match (same source, same pixel options and version
  as the other segments, the frames its timestamps say) and every packet's sha1 must match —
  the packets are read for placement anyway, so this costs one sha1 per packet;
* ``frames``: ``packets``, and every frame is decoded and its picture's sha1 compared with the
  manifest's (end to end: what the renderer encoded is what the stitch decodes);
* ``auto`` (default): ``frames`` when the stitch re-encodes (it decodes every frame anyway: the
  check adds only the hashing) and ``packets`` when it packet-copies (no decode otherwise).
  Costs measured in ``benchmarks/RESULTS.md`` ("Segment verification").

A failed check raises :class:`SegmentError` (an :class:`~gpen_video.errors.InputError`, exit 2)
naming the segment and, for damage, the frame; ``gpen-video farm`` and ``--workers`` re-render
such a chunk once when the source itself is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, is_dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from gpen_video.errors import InputError, UsageError

MANIFEST_FORMAT = 1
MANIFEST_KIND = "gpen-video-segment"
VERIFY_LEVELS = ("auto", "none", "packets", "frames")
LOSSLESS_FAMILIES = frozenset({"ffv1", "png"})
# packed formats with a filler byte (its value is the converter's or decoder's choice): where
# it is in each pixel
_FILLER = {"bgr0": 3, "rgb0": 3, "0bgr": 0, "0rgb": 0}
_SAMPLE = 1 << 20  # bytes per sample of the source's identity digest
# restore/detect fields that do not change what is rendered (where and how fast it runs)
_NOT_PIXELS = {"device", "threads", "batch", "max_batch", "engine_dir", "cache_dir", "download",
               "cuda_graphs", "runtime"}


class SegmentError(InputError):
    """A segment is not what it must be: foreign, of another job, or damaged (exit 2).

    ``segment``: its path; ``frame``: the source frame found damaged, if one was."""

    def __init__(self, message: str, segment: Path | None = None,
                 frame: int | None = None) -> None:
        super().__init__(message)
        self.segment = segment
        self.frame = frame


def manifest_path(segment: str | os.PathLike[str]) -> Path:
    """``SEGMENT.json``: where a segment's manifest lives."""
    segment = Path(segment)
    return segment.with_name(segment.name + ".json")


def check_level(level: str) -> str:
    """``level`` if it is one of :data:`VERIFY_LEVELS`.

    Raises:
        UsageError: anything else.
    """
    if level not in VERIFY_LEVELS:
        raise UsageError(f"--verify {level!r}: choose one of {', '.join(VERIFY_LEVELS)}")
    return level


def effective_level(level: str, reencode: bool) -> str:
    """What ``auto`` means for a stitch that re-encodes (frames) or packet-copies (packets)."""
    check_level(level)
    if level != "auto":
        return level
    return "frames" if reencode else "packets"


# ------------------------------------------------------------------------------ identities


def source_identity(source: Any) -> dict[str, Any]:
    """The identity of a :class:`~gpen_video.media.VideoSource`'s file (module docstring).

    Raises:
        InputError: the file cannot be read.
    """
    path = Path(source.path)
    try:
        size = path.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with open(path, "rb") as f:
            for offset in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
                f.seek(offset)
                digest.update(f.read(_SAMPLE))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return {"name": path.name, "width": int(source.coded_width),
            "height": int(source.coded_height), "rate": str(Fraction(source.fps or 0)),
            "time_base": str(source.time_base), "declared_frames": int(source.declared_frames or 0),
            "bytes": size, "sha256": digest.hexdigest()}


def same_source(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True if two identities name the same file content (the name may differ)."""
    keys = ("width", "height", "rate", "time_base", "declared_frames", "bytes", "sha256")
    return all(a.get(k) == b.get(k) for k in keys)


def pixel_options(run: Any) -> dict[str, Any]:
    """The options of a :class:`~gpen_video.options.RunOptions` that change the pixels it
    renders (module docstring), as plain JSON values."""
    def plain(value: Any) -> Any:
        if is_dataclass(value):
            return {k: plain(v) for k, v in asdict(value).items() if k not in _NOT_PIXELS}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k not in _NOT_PIXELS}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return value.name  # a weights file by name: its folder differs between machines
        return value

    return {"faces": run.faces, "compare": run.compare, "model": plain(run.model),
            "restore": plain(run.restore), "detect": plain(run.detect),
            "track": plain(run.track), "smooth": plain(run.smooth), "blend": plain(run.blend),
            "temporal": plain(run.temporal)}


def options_digest(options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


# ------------------------------------------------------------------------------ pictures


def picture_hash(frame: Any) -> str:
    """sha1 of the visible bytes of every plane of an ``av.VideoFrame`` (row padding left out;
    the filler byte of ``bgr0`` and the like set to 0 in the frame first, as no part of the
    picture), so the frame an encoder received and the one its lossless decoder returns hash
    alike. sha1, not md5 as in FFmpeg's framemd5: the same job, 2× faster here (SHA extensions)."""
    import numpy as np

    fmt = frame.format
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"{fmt.name} {frame.width}x{frame.height}".encode())
    planar = len(frame.planes) > 1
    for index, plane in enumerate(frame.planes):
        if planar:
            step = sum(-(-c.bits // 8) for c in fmt.components if c.plane == index)
            row = plane.width * step
        else:
            row = -(-plane.width * fmt.padded_bits_per_pixel // 8)
        stride, height = plane.line_size, plane.height
        data = np.frombuffer(plane, np.uint8)[:height * stride]
        if fmt.name in _FILLER:
            if not data.flags.writeable:
                data = data.copy()
            data.reshape(height, stride)[:, :row].reshape(height, plane.width, 4)[
                ..., _FILLER[fmt.name]] = 0
        view = memoryview(data)
        if stride == row:
            digest.update(view)
        else:
            for r in range(height):
                digest.update(view[r * stride:r * stride + row])
    return digest.hexdigest()


def packet_hash(packet: Any) -> str:
    return hashlib.sha1(bytes(packet), usedforsecurity=False).hexdigest()


# ------------------------------------------------------------------------------ writing


@dataclass
class SegmentJob:
    """What a segment's render knows of its job: the source and the pixel options."""

    source: dict[str, Any]
    options: dict[str, Any]


class SegmentRecorder:
    """Collects a segment's checksums while the sink writes it, and writes its manifest.

    The sink calls :meth:`picture` with each frame it hands the encoder, :meth:`packet` with
    each video packet before muxing it, and :meth:`write` once the file is complete, before
    renaming it into place."""

    def __init__(self, job: SegmentJob) -> None:
        from gpen_video import __version__

        self.job = job
        self.family = ""
        self.lossless = False
        self.version = __version__
        self.packets: list[tuple[int, str]] = []
        self.pictures: list[tuple[int, str]] = []
        self.indices: list[int] = []  # source frame index of every frame written
        self.picture_format: str | None = None

    def codec(self, family: str) -> None:
        """Told by the sink which codec family it encodes (pictures are hashed if lossless)."""
        self.family = family
        self.lossless = family in LOSSLESS_FAMILIES

    def picture(self, index: int, frame: Any) -> None:
        self.indices.append(int(index))
        if self.lossless:
            self.picture_format = frame.format.name
            self.pictures.append((int(index), picture_hash(frame)))

    def packet(self, packet: Any) -> None:
        self.packets.append((int(packet.pts), packet_hash(packet)))

    def record(self) -> dict[str, Any]:
        indices = self.indices
        first = min(indices) if indices else None
        last = max(indices) if indices else None
        return {"kind": MANIFEST_KIND, "format": MANIFEST_FORMAT, "version": self.version,
                "source": self.job.source, "options": self.job.options,
                "options_digest": options_digest(self.job.options),
                "frames": {"first": first, "last": last}, "codec": self.family,
                "picture_format": self.picture_format if self.lossless else None,
                "packets": [[p, h] for p, h in self.packets],
                "pictures": [[i, h] for i, h in self.pictures] if self.lossless else None}

    def write(self, segment: Path) -> Path:
        """Write ``SEGMENT.json`` (temp file + rename) for ``segment``; returns its path."""
        return write_json_atomically(manifest_path(segment), self.record())


def write_json_atomically(path: Path, record: dict[str, Any]) -> Path:
    """``record`` as JSON at ``path``, through a temporary file beside it and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ------------------------------------------------------------------------------ reading


def read_manifest(segment: Path) -> dict[str, Any]:
    """The manifest of ``segment``.

    Raises:
        SegmentError: missing, unreadable, or not a segment manifest.
    """
    path = manifest_path(segment)
    if not path.is_file():
        raise SegmentError(f"segment {segment.name} has no manifest ({path.name} is missing): "
                           "nothing proves which clip and job it belongs to; render it again "
                           "with gpen-video --segment (or stitch with --verify none to trust it)",
                           segment)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SegmentError(f"segment {segment.name}: its manifest {path.name} is damaged "
                           f"({exc}); render the segment again", segment) from None
    if not isinstance(record, dict) or record.get("kind") != MANIFEST_KIND:
        raise SegmentError(f"segment {segment.name}: {path.name} is not a gpen-video segment "
                           "manifest; render the segment again", segment)
    if record.get("format") != MANIFEST_FORMAT:
        raise SegmentError(f"segment {segment.name}: its manifest is of format "
                           f"{record.get('format')} (this gpen-video reads {MANIFEST_FORMAT}); "
                           "render it again with this version", segment)
    return record


def check_identity(segment: Path, record: dict[str, Any], source: dict[str, Any],
                   first: int, last: int) -> None:
    """The manifest belongs to ``source`` and says the frames the timestamps placed.

    Raises:
        SegmentError: another source, or other frames.
    """
    theirs = record.get("source") or {}
    if not same_source(theirs, source):
        raise SegmentError(f"segment {segment.name} was rendered from another clip "
                           f"({theirs.get('name', '?')}, {theirs.get('bytes', '?')} bytes) than "
                           f"{source['name']} ({source['bytes']} bytes): a foreign segment; "
                           "render its frames from this clip", segment)
    frames = record.get("frames") or {}
    if frames.get("first") is not None and (frames.get("first"), frames.get("last")) != \
            (first, last):
        raise SegmentError(f"segment {segment.name}: its manifest says frames "
                           f"{frames.get('first')}-{frames.get('last')} but its timestamps are "
                           f"those of frames {first}-{last}; render it again", segment)


def check_same_job(segments: list[tuple[Path, dict[str, Any]]],
                   expected: dict[str, Any] | None = None) -> None:
    """Every manifest has the same pixel options and version (and ``expected``'s options).

    Raises:
        SegmentError: a segment of another job or version.
    """
    if not segments:
        return
    ref_path, ref = segments[0]
    want = options_digest(expected) if expected is not None else ref.get("options_digest")
    for path, record in segments:
        if record.get("options_digest") != want:
            other = "this job" if expected is not None else ref_path.name
            raise SegmentError(f"segment {path.name} was rendered with other options than "
                               f"{other} (options digest {record.get('options_digest')} vs "
                               f"{want}): a segment of another job; render it again with this "
                               "job's options", path)
        if record.get("version") != ref.get("version"):
            raise SegmentError(f"segment {path.name} was rendered by gpen-video "
                               f"{record.get('version')}, {ref_path.name} by "
                               f"{ref.get('version')}: render every segment with one version",
                               path)


def check_packets(segment: Path, record: dict[str, Any], packets: list[tuple[int, str]],
                  frame_of: dict[int, int]) -> None:
    """Every packet's sha1 matches the manifest's, in decode order.

    ``packets``: (pts as demuxed, sha1) per video packet; ``frame_of``: that pts → source frame
    index (to name the damaged frame). Pts are not compared: Matroska rounds them to 1 ms.

    Raises:
        SegmentError: a packet differs, is missing or is extra.
    """
    listed = [h for _, h in record.get("packets") or []]
    for k, ((pts, got), want) in enumerate(zip(packets, listed)):
        if got != want:
            frame = frame_of.get(pts)
            where = f"frame {frame}" if frame is not None else f"packet {k}"
            raise SegmentError(f"segment {segment.name} is damaged: {where} does not match its "
                               "checksum (the file changed after it was written); render it "
                               "again", segment, frame)
    if len(packets) != len(listed):
        raise SegmentError(f"segment {segment.name} holds {len(packets)} video packets but its "
                           f"manifest lists {len(listed)}: damaged or replaced; render it again",
                           segment)


class PictureCheck:
    """Compares decoded frames with a manifest's picture checksums, one frame at a time."""

    def __init__(self, segment: Path, record: dict[str, Any]) -> None:
        self.segment = segment
        pictures = record.get("pictures")
        self.expected = {int(i): h for i, h in pictures} if pictures else None
        self.format = record.get("picture_format")

    @property
    def active(self) -> bool:
        return self.expected is not None

    def check(self, index: int, frame: Any) -> None:
        """Raises SegmentError when the decoded ``frame`` (source index ``index``) differs."""
        if self.expected is None:
            return
        want = self.expected.get(index)
        if want is None or frame.format.name != self.format or picture_hash(frame) != want:
            raise SegmentError(f"segment {self.segment.name} is damaged: frame {index} decodes "
                               "to another picture than was rendered (checksum mismatch); "
                               "render it again", self.segment, index)
