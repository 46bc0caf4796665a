"""The faces file: one clip's face analysis, written once (``gpen-video analyse``), read by every
render (``--faces-from``), chunk and farm worker.

What it holds is exactly what crosses the seam between the faces stage and restoration
(:class:`~gpen_video.faces.types.TrackedFace`, per frame and per track), so a render that reads
it is bit-identical to one that detects with the same analysis options: the restorer takes
``params_to_matrix(params, S)`` for its crop size ``S``, as the face stream does.

Format (version 1)
==================

A gzip stream of JSON lines (UTF-8, one JSON object per line; ``zcat FILE | head -1`` shows
the header), whatever the file's name. Chosen because it streams both ways with memory bounded
by one frame, every error can name its line, ``zcat | jq`` reads it, and Python's JSON writes a
float64 as its shortest decimal that reads back to the same float64 (``repr``), so every number
round-trips exactly (NaN and infinities are refused on writing). gzip at level 6 brings a face-
frame to ≈ 150 bytes (``benchmarks/RESULTS.md``, "Faces file").

Line 1, the header::

    {"format": "gpen-video-faces", "version": 1, "writer": "gpen-video 0.x",
     "clip": {"name", "frame_count", "width", "height", "fps": "30000/1001",
              "time_base": "1/30000", "rotation"},
     "range": {"start", "end"},          # frames analysed (and reported below), inclusive
     "options": {"detect": {…}, "track": {…}, "smooth": {…}, "ramp_frames", "detect_every"}}

Then one line per frame, ``start`` … ``end`` in order::

    {"f": 12, "cut": true?, "faces": [{"id": 1, "p": [cx, cy, width, angle], "a": alpha,
      "n": frames_since_start, "e": frames_to_end | null, "d": detected, "c": confirmed,
      "sf": score, "lmf": [x0, y0, … x4, y4]?, "boxf": [x0, y0, x1, y1] | "box": null}, …],
     "crc": "…"}

``s``, ``lm`` and ``box`` are written as ``sf``, ``lmf``, ``boxf`` when every value is a float32
(the detector's outputs are): the shortest decimal that reads back to that float32, which is read
through float32 (a third smaller; the same float64 bits). ``p`` is the smoothed similarity (:class:`~gpen_video.faces.types.SimilarityParams`), ``a`` the
paste ramp, ``lm`` the detector's 5 points (present on detected frames; elsewhere they are the
template mapped through ``p``), ``cut`` present only on a frame that starts a shot. The last
line closes the file::

    {"end": {"frames": N, "faces": M, "tracks": [[id, first, last, frames], …],
             "cuts": [f, …], "hashes": {"f": "blake2b-128 hex of the decoded RGB frame", …}},
     "crc": "…"}

Every line ends with ``"crc"``: the CRC-32 (hex) of the line's text before ``,"crc"`` with a
closing ``}``. A file is trusted only whole: a line that is not JSON, a field of the wrong
shape, a line whose CRC does not match (edited by hand), a frame out of sequence or a missing
end line (truncated) is refused with its line number and field
(:class:`FacesFileError`, exit 2).

Versions: :data:`VERSION` is written; :data:`READABLE` are read. A file of another version is
refused with the reason (newer: upgrade gpen-video; older: analyse again).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from gpen_video.errors import InputError

FORMAT = "gpen-video-faces"
VERSION = 1
READABLE = (1,)
COMPRESS_LEVEL = 6  # gzip level: 9 is ≈ 3× slower to write for a few % smaller
HASHED_FRAMES = 5  # decoded frames whose hash identifies the clip (first, then evenly spread)
IDENTITY_FIELDS = ("frame_count", "width", "height", "fps", "time_base")


class FacesFileError(InputError):
    """A faces file that cannot be used: not one, damaged, edited, another version, another
    clip or range (exit 2). The message names the file, the line and the field."""


# -- the clip's identity -----------------------------------------------------------------------

def frame_hash(image: np.ndarray) -> str:
    """BLAKE2b-128 of a decoded frame's pixels (RGB, as :class:`~gpen_video.media.Frame`
    holds them) and its shape and dtype, hex."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.shape}{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def hashed_frames(start: int, end: int, count: int = HASHED_FRAMES) -> tuple[int, ...]:
    """The frames of ``start … end`` whose hashes a faces file keeps: the first, then evenly
    spread up to the last."""
    if end <= start:
        return (start,)
    n = min(count, end - start + 1)
    return tuple(sorted({start + round(k * (end - start) / (n - 1)) for k in range(n)}))


def clip_identity(source: Any) -> dict[str, Any]:
    """The fields of an opened :class:`~gpen_video.media.VideoSource` a faces file records and
    compares (:data:`IDENTITY_FIELDS`, plus the name and rotation for the reader)."""
    return {"name": Path(source.path).name, "frame_count": int(source.frame_count),
            "width": int(source.width), "height": int(source.height),
            "fps": str(Fraction(source.fps)) if source.fps else "0",
            "time_base": str(Fraction(source.time_base)), "rotation": float(source.rotation)}


def analysis_options(options: Any, fps: float, detect_every: int) -> dict[str, Any]:
    """What a :class:`~gpen_video.options.RunOptions` says about the analysis (everything the
    faces stage's output depends on; device, cache and download settings do not)."""
    detect = {k: (Path(v).name if isinstance(v, Path) else v)
              for k, v in asdict(options.detect).items()
              if k not in ("device", "cache_dir", "download")}
    return {"detect": detect, "track": asdict(options.track), "smooth": asdict(options.smooth),
            "ramp_frames": options.blend.ramp_frames, "fps": fps, "detect_every": detect_every}


# -- records -----------------------------------------------------------------------------------

def _numbers(values: Any) -> list[float]:
    out = [float(v) for v in np.asarray(values, np.float64).reshape(-1)]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"faces file: a non-finite number {out}")
    return out


def face_record(face: Any) -> dict[str, Any]:
    """One :class:`~gpen_video.faces.types.TrackedFace` as a frame line's face object."""
    p = face.params
    record: dict[str, Any] = {
        "id": int(face.track_id), "p": _numbers([p.cx, p.cy, p.width, p.angle]),
        "a": float(face.alpha_hint), "n": int(face.frames_since_start),
        "e": None if face.frames_to_end is None else int(face.frames_to_end),
        "d": bool(face.detected), "c": bool(face.confirmed)}
    _put(record, "s", [face.score])
    if face.detected:
        _put(record, "lm", face.landmarks)
    if face.box is None:
        record["box"] = None
    else:
        _put(record, "box", face.box)
    return record


def _put(record: dict[str, Any], key: str, values: Any) -> None:
    """``values`` under ``key`` (float64, shortest repr), or under ``key + "f"`` written as
    float32 when every value is a float32 (the detector's outputs are: about a third smaller;
    read back through float32, the same float64 bits)."""
    numbers = _numbers(values)
    single = np.asarray(numbers, np.float64).astype(np.float32)
    if np.array_equal(single.astype(np.float64), numbers):
        short = [float(str(v)) for v in single]
        record[key + "f"] = short[0] if key == "s" else short
    else:
        record[key] = numbers[0] if key == "s" else numbers


def _get(record: dict[str, Any], key: str) -> Any:
    """The float64 values :func:`_put` wrote under ``key`` (None if absent)."""
    if key + "f" in record:
        return np.asarray(record[key + "f"], np.float64).astype(np.float32).astype(np.float64)
    value = record.get(key)
    return None if value is None else np.asarray(value, np.float64)


def _line(record: dict[str, Any]) -> str:
    """``record`` as one line with its CRC (module docstring)."""
    body = json.dumps(record, separators=(",", ":"), allow_nan=False)
    crc = zlib.crc32(body.encode("utf-8"))
    return f'{body[:-1]},"crc":"{crc:08x}"}}\n'


# -- writing -----------------------------------------------------------------------------------

class FacesWriter:
    """Writes a faces file line by line to a temporary file beside ``path``; :meth:`close`
    renames it into place, :meth:`abort` deletes it (nothing partial is ever at ``path``)."""

    def __init__(self, path: Path, header: dict[str, Any], overwrite: bool = False) -> None:
        """Raises:
            OutputError: ``path`` exists (without ``overwrite``), its folder does not, or
                cannot be written (:func:`gpen_video.media.paths.check_output`)."""
        from gpen_video.media import paths

        self.path = paths.check_output(path, overwrite=overwrite)
        self.overwrite = overwrite
        self.temporary = paths.temp_file_for(self.path)
        self._raw = open(self.temporary, "wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                                 compresslevel=COMPRESS_LEVEL, mtime=0)
        self._text = io.TextIOWrapper(self._gz, encoding="utf-8", newline="\n")
        self._text.write(_line({"format": FORMAT, "version": VERSION, **header}))
        self.frames = 0
        self.faces = 0
        self._next: int | None = header["range"]["start"]
        self._tracks: dict[int, list[int]] = {}  # id → [first, last, frames]
        self._cuts: list[int] = []
        self.hashes: dict[int, str] = {}

    @property
    def tracks(self) -> int:
        """Tracks written so far."""
        return len(self._tracks)

    def write(self, index: int, cut: bool, faces: list[Any]) -> None:
        """The next frame's faces (all of them, before any selection), in frame order."""
        if index != self._next:
            raise ValueError(f"faces file: frame {index} written after {self._next} was due")
        self._next = index + 1
        record: dict[str, Any] = {"f": int(index)}
        if cut:
            record["cut"] = True
            self._cuts.append(int(index))
        record["faces"] = [face_record(f) for f in faces]
        self._text.write(_line(record))
        self.frames += 1
        self.faces += len(faces)
        for f in faces:
            span = self._tracks.setdefault(int(f.track_id), [index, index, 0])
            span[1] = index
            span[2] += 1

    def close(self) -> dict[str, Any]:
        """Write the end line, flush, rename into place; returns the end record."""
        end = {"frames": self.frames, "faces": self.faces,
               "tracks": [[i, *span] for i, span in sorted(self._tracks.items())],
               "cuts": self._cuts, "hashes": {str(k): v for k, v in sorted(self.hashes.items())}}
        self._text.write(_line({"end": end}))
        self._text.close()  # ends the gzip stream (GzipFile leaves the file open)
        self._raw.close()
        from gpen_video.media import paths

        paths.finalize_file(self.temporary, self.path, self.overwrite)
        return end

    def abort(self) -> None:
        """Delete the temporary file (after an error or an interruption)."""
        from gpen_video.media import paths

        for stream in (self._text, self._raw):
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - the file is deleted anyway
                pass
        paths.remove_quietly(self.temporary)
        paths.release(self.temporary)


# -- reading -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackSpan:
    """One track of a faces file (from its end line)."""

    track_id: int
    first: int
    last: int
    frames: int


@dataclass(frozen=True)
class FrameRecord:
    """One frame line, checked."""

    index: int
    cut: bool
    faces: tuple[dict[str, Any], ...]


@dataclass
class FacesFile:
    """A faces file whose every line was read and checked (:func:`open_faces`)."""

    path: Path
    header: dict[str, Any]
    end: dict[str, Any]
    tracks: tuple[TrackSpan, ...] = field(default_factory=tuple)

    @property
    def clip(self) -> dict[str, Any]:
        return self.header["clip"]

    @property
    def start(self) -> int:
        return int(self.header["range"]["start"])

    @property
    def last(self) -> int:
        return int(self.header["range"]["end"])

    @property
    def options(self) -> dict[str, Any]:
        return self.header["options"]

    @property
    def track_ids(self) -> tuple[int, ...]:
        return tuple(t.track_id for t in self.tracks)

    @property
    def hashes(self) -> dict[int, str]:
        return {int(k): v for k, v in self.end["hashes"].items()}

    def frames(self) -> Iterator[FrameRecord]:
        """The frame lines in order (read again, streamed, checked again)."""
        for number, kind, record in _lines(self.path):
            if kind == "frame":
                yield _frame(self.path, number, record)

    def check_clip(self, source: Any) -> None:
        """Raises:
            FacesFileError: ``source`` (an opened VideoSource, no range) is not the analysed
                clip: the message names every field that differs."""
        have = clip_identity(source)
        differ = [f"{k} {self.clip.get(k)} ≠ {have[k]}" for k in IDENTITY_FIELDS
                  if self.clip.get(k) != have[k]]
        if differ:
            raise FacesFileError(
                f"{self.path} is the analysis of another clip ({self.clip.get('name')}): "
                f"{'; '.join(differ)} ({source.path.name}); run `gpen-video analyse "
                f"{source.path} FACES` for this one")

    def check_frame(self, index: int, image: np.ndarray, source_name: str) -> None:
        """Raises:
            FacesFileError: frame ``index`` is one the file hashed and its pixels differ."""
        want = self.hashes.get(int(index))
        if want is not None and frame_hash(image) != want:
            raise FacesFileError(
                f"{self.path} is the analysis of another clip: decoded frame {index} of "
                f"{source_name} differs from the analysed one (field hashes.{index}; same "
                "size, rate and length, other pixels); run `gpen-video analyse` on this clip")

    def check_range(self, start: int, end: int) -> None:
        """Raises:
            FacesFileError: frames ``start … end`` are not all inside the analysed range."""
        if start < self.start or end > self.last:
            raise FacesFileError(
                f"{self.path} analysed frames {self.start}-{self.last} (field range); this "
                f"render needs faces for frames {start}-{end}: analyse those frames (or the "
                "whole clip) with `gpen-video analyse --frames`")


def read_header(path: Path) -> dict[str, Any]:
    """The header of the faces file at ``path`` (its first line only, checked).

    Raises:
        FacesFileError: missing, not a faces file, another version, damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise FacesFileError(f"faces file {path} does not exist: make it with `gpen-video "
                             "analyse INPUT FACES`")
    lines = _lines(path)
    try:
        for _, _, record in lines:
            return record
    finally:
        lines.close()
    raise FacesFileError(f"{path} is empty: not a faces file")


def open_faces(path: Path) -> FacesFile:
    """Read and check every line of the faces file at ``path`` (streamed, bounded memory).

    Raises:
        FacesFileError: missing, not a faces file, another version, damaged, truncated or
            edited (line and field named).
    """
    path = Path(path)
    if not path.is_file():
        raise FacesFileError(f"faces file {path} does not exist: make it with `gpen-video "
                             "analyse INPUT FACES`")
    header: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    expected = None
    last_line = 0
    for number, kind, record in _lines(path):
        last_line = number
        if kind == "header":
            header = record
            expected = int(record["range"]["start"])
        elif kind == "frame":
            frame = _frame(path, number, record)
            if frame.index != expected:
                raise FacesFileError(f"{path} line {number}, field f: frame {frame.index} where "
                                     f"frame {expected} was due (lines removed or reordered); "
                                     "run `gpen-video analyse` again")
            expected += 1
        else:
            end = _end(path, number, record)
    if header is None:
        raise FacesFileError(f"{path} is empty: not a faces file")
    if end is None:
        raise FacesFileError(f"{path} is truncated: no end line after line {last_line} (the "
                             "analysis did not finish); run `gpen-video analyse` again")
    last = int(header["range"]["end"])
    if expected != last + 1 or end["frames"] != last - int(header["range"]["start"]) + 1:
        raise FacesFileError(f"{path} line {last_line}, field end.frames: the file holds "
                             f"frames up to {expected - 1}, its header says {last}; run "
                             "`gpen-video analyse` again")
    spans = tuple(TrackSpan(*map(int, t)) for t in end["tracks"])
    return FacesFile(path, header, end, spans)


def _lines(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(line number, "header" | "frame" | "end", record)`` for every line, each parsed and
    its CRC checked; the header's format and version checked."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    number = 0
    ended = False
    try:
        with opener(path, "rt", encoding="utf-8", newline="\n") as text:
            for number, line in enumerate(text, 1):
                if ended:
                    raise FacesFileError(f"{path} line {number}: text after the end line; run "
                                         "`gpen-video analyse` again")
                record = _parse(path, number, line)
                if number == 1:
                    _check_header(path, record)
                    yield number, "header", record
                elif "end" in record:
                    ended = True
                    yield number, "end", record
                else:
                    yield number, "frame", record
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as exc:
        where = f"after line {number}" if number else "at its start"
        raise FacesFileError(f"{path} is truncated or damaged {where} ({exc}); run "
                             "`gpen-video analyse` again") from None


def _parse(path: Path, number: int, line: str) -> dict[str, Any]:
    if not line.endswith("\n"):
        raise FacesFileError(f"{path} line {number}: cut off mid-line (the file is truncated); "
                             "run `gpen-video analyse` again")
    line = line.rstrip("\n")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FacesFileError(f"{path} line {number}, column {exc.colno}: not JSON ({exc.msg}); "
                             "the file was damaged or edited: run `gpen-video analyse` "
                             "again") from None
    if not isinstance(record, dict) or not isinstance(record.get("crc"), str):
        raise FacesFileError(f"{path} line {number}, field crc: missing (not a line gpen-video "
                             "wrote)")
    at = line.rfind(',"crc":"')
    body = line[:at] + "}"
    if at < 0 or f"{zlib.crc32(body.encode('utf-8')):08x}" != record["crc"]:
        what = _changed_field(record)
        raise FacesFileError(f"{path} line {number}{what}: the line's checksum does not match "
                             "(edited after gpen-video wrote it); run `gpen-video analyse` "
                             "again rather than editing the file")
    return record


def _changed_field(record: dict[str, Any]) -> str:
    """For a line whose CRC fails: the first field whose shape is wrong, when one is (a
    hand edit that kept the shape cannot be pinned to a field)."""
    if "f" in record:
        try:
            _check_frame_fields(record)
        except ValueError as exc:
            return f", field {exc}"
    return ""


def _check_header(path: Path, record: dict[str, Any]) -> None:
    if record.get("format") != FORMAT:
        raise FacesFileError(f"{path} line 1, field format: {record.get('format')!r}, not a "
                             f"{FORMAT} file; make one with `gpen-video analyse`")
    version = record.get("version")
    if version not in READABLE:
        if isinstance(version, int) and version > VERSION:
            why = (f"written by a newer gpen-video ({record.get('writer', '?')}); this one "
                   f"reads version{'s' if len(READABLE) > 1 else ''} "
                   f"{', '.join(map(str, READABLE))}: upgrade gpen-video")
        else:
            why = (f"this gpen-video reads version {', '.join(map(str, READABLE))} only (older "
                   "files lack what a bit-identical render needs); run `gpen-video analyse` "
                   "again")
        raise FacesFileError(f"{path} line 1, field version: version {version!r}: {why}")
    for key in ("clip", "range", "options"):
        if not isinstance(record.get(key), dict):
            raise FacesFileError(f"{path} line 1, field {key}: missing")


_FACE_FIELDS = {"id": int, "p": 4, "a": float, "n": int, "d": bool, "c": bool}


def _check_frame_fields(record: dict[str, Any]) -> None:
    """Raises ValueError("FIELD: what is wrong") for a frame record of the wrong shape."""
    if not isinstance(record.get("f"), int) or isinstance(record.get("f"), bool):
        raise ValueError("f: expected a frame number")
    if "cut" in record and record["cut"] is not True:
        raise ValueError("cut: expected true (or no field)")
    faces = record.get("faces")
    if not isinstance(faces, list):
        raise ValueError("faces: expected a list")
    for k, face in enumerate(faces):
        if not isinstance(face, dict):
            raise ValueError(f"faces[{k}]: expected an object")
        for name, kind in _FACE_FIELDS.items():
            value = face.get(name)
            if isinstance(kind, int) and not isinstance(kind, bool) and kind is not int:
                if not _floats(value, kind):
                    raise ValueError(f"faces[{k}].{name}: expected {kind} numbers")
            elif kind is float:
                if not _floats([value], 1):
                    raise ValueError(f"faces[{k}].{name}: expected a number")
            elif kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"faces[{k}].{name}: expected true or false")
            elif not isinstance(value, int) or isinstance(value, bool) or value < (
                    1 if name == "id" else 0):
                raise ValueError(f"faces[{k}].{name}: expected a whole number"
                                 f"{' ≥ 1' if name == 'id' else ' ≥ 0'}")
        e = face.get("e")
        if e is not None and (not isinstance(e, int) or isinstance(e, bool) or e < 0):
            raise ValueError(f"faces[{k}].e: expected a whole number ≥ 0 or null")
        for key, n in (("s", 1), ("lm", 10), ("box", 4)):
            for name in (key, key + "f"):
                value = face.get(name)
                if key == "s" and name in face:
                    value = [value]
                if value is not None and not _floats(value, n):
                    raise ValueError(f"faces[{k}].{name}: expected {n} number"
                                     f"{'s' if n > 1 else ''}")
        if "s" not in face and "sf" not in face:
            raise ValueError(f"faces[{k}].s: expected a number")
        if face["p"][2] <= 0 or not 0.0 < face["a"] <= 1.0:
            raise ValueError(f"faces[{k}].{'p' if face['p'][2] <= 0 else 'a'}: out of range")


def _floats(value: Any, n: int) -> bool:
    return (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) for v in value))


def _frame(path: Path, number: int, record: dict[str, Any]) -> FrameRecord:
    try:
        _check_frame_fields(record)
    except ValueError as exc:
        raise FacesFileError(f"{path} line {number}, field {exc}; run `gpen-video analyse` "
                             "again") from None
    return FrameRecord(record["f"], bool(record.get("cut", False)), tuple(record["faces"]))


def _end(path: Path, number: int, record: dict[str, Any]) -> dict[str, Any]:
    end = record.get("end")
    ok = (isinstance(end, dict) and isinstance(end.get("frames"), int)
          and isinstance(end.get("tracks"), list)
          and all(isinstance(t, list) and len(t) == 4 and all(isinstance(v, int) for v in t)
                  for t in end["tracks"])
          and isinstance(end.get("hashes"), dict))
    if not ok:
        raise FacesFileError(f"{path} line {number}, field end: not an end record; run "
                             "`gpen-video analyse` again")
    return end


def tracked_face(record: dict[str, Any], index: int, crop_size: int) -> Any:
    """A face object of a frame line as the :class:`~gpen_video.faces.types.TrackedFace` the
    face stream emitted (the matrix for ``crop_size`` made as the stream makes it)."""
    from gpen_video.faces.align import params_to_matrix, template_in_frame
    from gpen_video.faces.types import SimilarityParams, TrackedFace

    params = SimilarityParams(*(float(v) for v in record["p"]))
    lm = _get(record, "lm")
    landmarks = lm.reshape(5, 2) if lm is not None else template_in_frame(params)
    to_end = record["e"]
    return TrackedFace(
        track_id=record["id"], frame_index=index, matrix=params_to_matrix(params, crop_size),
        crop_size=crop_size, params=params, landmarks=landmarks, detected=record["d"],
        score=float(_get(record, "s")), confirmed=record["c"], is_start=record["n"] == 0,
        is_end=to_end == 0, frames_since_start=record["n"], frames_to_end=to_end,
        alpha_hint=float(record["a"]),
        box=_get(record, "box"))
