"""The contact sheet: one picture to choose faces from, one cell per track.

Each cell: the track's clearest face (the aligned crop of the frame where the detector was
surest, the sharpest among near-equal scores), its id as ``--tracks`` takes it, the first and
last frame with their timecodes, seconds on screen and the median face width (the detector's
box, frame pixels). Tracks on screen for fewer than ``brief`` frames are grouped at the end as
"brief": smaller pictures, id and frames only (flashes, passers-by, false detections).

Memory: one small crop and the face widths per track, whatever the clip's length. Built while
frames pass (:meth:`ContactSheet.add`), drawn at the end (:meth:`ContactSheet.write`).

Convention: frames are H×W×3 RGB uint8/uint16 (:class:`~gpen_video.media.Frame`); the PNG is
8-bit RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

THUMB = 160  # px, a track's picture
BRIEF_THUMB = 72  # px, a brief track's picture
BRIEF_FRAMES = 12  # default: tracks on fewer frames are "brief"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BG = (32, 32, 32)
_FG = (235, 235, 235)
_DIM = (165, 165, 165)
_ACCENT = (255, 196, 64)
_PAD = 10


@dataclass
class _Track:
    track_id: int
    first: int
    last: int
    first_time: Fraction
    last_time: Fraction
    frames: int = 0
    widths: list[float] = field(default_factory=list)
    best: tuple[float, float] = (-1.0, -1.0)  # (score rounded, sharpness)
    crop: np.ndarray | None = None


def timecode(seconds: Fraction, fps: float) -> str:
    """``HH:MM:SS:FF`` of a time in seconds at the nominal rate ``round(fps)``."""
    rate = max(1, round(fps))
    frames = math.floor(seconds * rate + Fraction(1, 1000))
    ff = frames % rate
    s = frames // rate
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}"


class ContactSheet:
    """Collects each track's clearest face while frames pass; draws the sheet."""

    def __init__(self, title: str, fps: float, brief: int = BRIEF_FRAMES) -> None:
        self.title = title
        self.fps = float(fps) if fps else 25.0
        self.brief = max(0, int(brief))
        self.tracks: dict[int, _Track] = {}
        self.frames = 0

    def add(self, frame: Any, faces: list[Any]) -> None:
        """One frame (``gpen_video.media.Frame``) and every face reported on it
        (:class:`~gpen_video.faces.types.TrackedFace`, user ids)."""
        from gpen_video.faces.align import params_to_matrix

        self.frames += 1
        for face in faces:
            t = self.tracks.get(face.track_id)
            if t is None:
                t = self.tracks[face.track_id] = _Track(face.track_id, frame.index, frame.index,
                                                        frame.time, frame.time)
            t.last, t.last_time = frame.index, frame.time
            t.frames += 1
            if face.box is not None:
                t.widths.append(float(face.box[2] - face.box[0]))
            score = round(float(face.score), 2) if face.detected else 0.0
            if score < t.best[0]:
                continue
            crop = cv2.warpAffine(_as_8bit(frame.image), params_to_matrix(face.params, THUMB),
                                  (THUMB, THUMB), flags=cv2.INTER_AREA,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=_BG)
            sharp = float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY),
                                        cv2.CV_32F).var())
            if (score, sharp) > t.best:
                t.best, t.crop = (score, sharp), crop

    # -- drawing ------------------------------------------------------------------------------

    def image(self) -> np.ndarray:
        """The sheet, H×W×3 RGB uint8."""
        main = [t for t in sorted(self.tracks.values(), key=lambda t: t.track_id)
                if t.frames >= self.brief]
        brief = [t for t in sorted(self.tracks.values(), key=lambda t: t.track_id)
                 if t.frames < self.brief]
        cell_w, cell_h = THUMB + 2 * _PAD + 40, THUMB + 4 * 18 + 2 * _PAD
        columns = max(1, min(5, len(main) or 1))
        width = max(columns * cell_w + _PAD, 560)
        rows = [self._header(width)]
        for k in range(0, len(main), columns):
            row = np.full((cell_h, width, 3), _BG, np.uint8)
            for c, t in enumerate(main[k:k + columns]):
                self._cell(row, t, c * cell_w + _PAD)
            rows.append(row)
        if not main:
            rows.append(self._note(width, "no track long enough for a cell"
                                   + (" (see brief)" if brief else " (no faces found)")))
        if brief:
            rows.append(self._brief(width, brief))
        return np.concatenate(rows, axis=0)

    def write(self, path: Path, overwrite: bool = True) -> Path:
        """Draw and write the PNG (temporary file, then renamed: never partial).

        Raises:
            OutputError: the folder is missing or not writable; the file exists and
                ``overwrite`` is False.
        """
        from gpen_video.media import paths

        path = paths.check_output(path, overwrite=overwrite)
        temp = paths.temp_file_for(path)
        try:
            ok = cv2.imwrite(str(temp), cv2.cvtColor(self.image(), cv2.COLOR_RGB2BGR))
            if not ok:
                raise OSError(f"OpenCV could not write {temp}")
            paths.finalize_file(temp, path, overwrite)
        except BaseException:
            paths.remove_quietly(temp)
            paths.release(temp)
            raise
        return path

    def _header(self, width: int) -> np.ndarray:
        band = np.full((54, width, 3), (20, 20, 20), np.uint8)
        long = sum(t.frames >= self.brief for t in self.tracks.values())
        _text(band, self.title, (_PAD, 22), 0.6, _FG, 2)
        _text(band, f"{self.frames} frames, {len(self.tracks)} tracks ({long} shown, "
              f"{len(self.tracks) - long} brief: < {self.brief} frames); choose with "
              "--tracks / --skip-tracks", (_PAD, 44), 0.42, _DIM)
        return band

    def _cell(self, row: np.ndarray, t: _Track, x: int) -> None:
        y = _PAD
        if t.crop is not None:
            row[y:y + THUMB, x:x + THUMB] = t.crop
        cv2.rectangle(row, (x, y), (x + 40, y + 24), (0, 0, 0), -1)
        _text(row, f"{t.track_id}", (x + 4, y + 19), 0.7, _ACCENT, 2)
        lines = [
            f"frames {t.first}-{t.last}",
            f"{timecode(t.first_time, self.fps)}-{timecode(t.last_time, self.fps)}",
            f"{t.frames / self.fps:.1f} s on screen",
            f"face {np.median(t.widths):.0f} px wide" if t.widths else "face size: n/a"]
        for k, line in enumerate(lines):
            _text(row, line, (x, y + THUMB + 16 + 18 * k), 0.42, _FG if k == 0 else _DIM)

    def _brief(self, width: int, tracks: list[_Track]) -> np.ndarray:
        step = BRIEF_THUMB + 2 * _PAD + 30
        per_row = max(1, (width - _PAD) // step)
        rows = math.ceil(len(tracks) / per_row)
        band = np.full((28 + rows * (BRIEF_THUMB + 40), width, 3), (24, 24, 24), np.uint8)
        _text(band, f"brief (< {self.brief} frames): {len(tracks)}", (_PAD, 20), 0.5, _FG)
        for k, t in enumerate(tracks):
            x = _PAD + (k % per_row) * step
            y = 28 + (k // per_row) * (BRIEF_THUMB + 40)
            if t.crop is not None:
                band[y:y + BRIEF_THUMB, x:x + BRIEF_THUMB] = cv2.resize(
                    t.crop, (BRIEF_THUMB, BRIEF_THUMB), interpolation=cv2.INTER_AREA)
            _text(band, f"{t.track_id}: {t.first}-{t.last}", (x, y + BRIEF_THUMB + 14), 0.38,
                  _FG)
        return band

    def _note(self, width: int, note: str) -> np.ndarray:
        band = np.full((40, width, 3), _BG, np.uint8)
        _text(band, note, (_PAD, 26), 0.5, _DIM)
        return band


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float,
          color: tuple[int, int, int], thickness: int = 1) -> None:
    cv2.putText(image, text, origin, _FONT, scale, color, thickness, cv2.LINE_AA)


def _as_8bit(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return (image >> 8).astype(np.uint8)
