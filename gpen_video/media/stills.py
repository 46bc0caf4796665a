"""One image file in, one image file out, losing nothing: PNG, JPEG, TIFF, DPX with PyAV, EXR
with OpenEXR.

Conventions (:class:`Picture`):

* ``rgb`` is H×W×3 in the file's own sample type: ``uint8`` (8-bit files), ``uint16`` on the
  full 0–65535 scale (deeper integer files: 10-bit DPX 1023 → 65535, exactly as
  :class:`~gpen_video.media.source.VideoSource` does), or ``float16``/``float32`` (EXR, the
  stored values untouched: nothing clipped, negatives kept).
* ``alpha`` is H×W of the same type, or None; it is written back bit for bit.
* ``header`` (EXR) is the file's header as OpenEXR reads it (compression, chromaticities,
  ``framesPerSecond``, ``timeCode``, any custom attribute) and ``extra`` every channel that is
  not R, G, B or A (``depth.Z``, other layers): both are written back unchanged. A multi-part
  EXR restores the first part with R, G and B; every other part (``parts``) is written back as
  read. DPX: the film/TV headers (``dpx_industry``, frame rate, timecode) likewise.

Why OpenEXR (the ``openexr`` wheel, 1.8 MB) rather than OpenImageIO (a wheel of tens of MB):
EXR is the one format FFmpeg cannot keep (it writes no header attributes, no layers, no half
from RGB input, and reads attributes not at all); PyAV already reads and writes PNG, JPEG, TIFF
and DPX at their full depth with alpha, so OpenEXR's small, exact API covers the rest.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from gpen_video.errors import InputError, UsageError
from gpen_video.media.codecs import layout_has_alpha, pix_fmt_layout

# suffix → (format family, PyAV encoder or "exr")
STILL_SUFFIXES: dict[str, str] = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg",
                                  ".tif": "tiff", ".tiff": "tiff", ".dpx": "dpx", ".exr": "exr"}
_RGBA_CHANNELS = ("R", "G", "B", "A")


@dataclass
class Picture:
    """One image: colour, alpha and whatever else the file held (module docstring)."""

    rgb: np.ndarray  # H×W×3 uint8 | uint16 (full scale) | float16 | float32
    alpha: np.ndarray | None = None  # H×W, same dtype
    codec: str = "png"  # png | mjpeg | tiff | dpx | exr
    pix_fmt: str = "rgb24"  # the decoded pixel format (EXR: "half" or "float")
    bit_depth: int = 8  # per sample as stored (EXR: 16 or 32)
    header: dict[str, Any] = field(default_factory=dict)  # EXR header
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # EXR channels besides RGBA
    # multi-part EXR: every part as read, (name, header, channels), the restored one (``part``)
    # replaced on writing; empty for single-part files
    parts: list[tuple[str, dict[str, Any], dict[str, np.ndarray]]] = field(default_factory=list)
    part: int = 0

    @property
    def is_float(self) -> bool:
        return self.rgb.dtype.kind == "f"

    @property
    def fps(self) -> Fraction | None:
        """EXR ``framesPerSecond`` or the DPX film/TV header's frame rate, or None."""
        if "dpx_fps" in self.header:
            return self.header["dpx_fps"]
        rate = self.header.get("framesPerSecond")
        if rate is None:
            return None
        num, den = (int(v) for v in np.asarray(rate).ravel()[:2])
        return Fraction(num, den) if num > 0 and den > 0 else None


def suffix_codec(path: str | Path) -> str | None:
    """The still format of a file name (``png``, ``mjpeg``, ``tiff``, ``dpx``, ``exr``) or None."""
    return STILL_SUFFIXES.get(Path(path).suffix.lower())


def read_picture(path: str | Path) -> Picture:
    """Read one image file (module docstring for what comes back).

    Raises:
        InputError: missing, empty, unreadable, or an EXR without R, G and B channels.
        UsageError: EXR input without the OpenEXR library installed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input frame {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"input frame {path} is empty (0 bytes)")
    if suffix_codec(path) == "exr":
        return _read_exr(path)
    return _read_av(path)


def _read_av(path: Path) -> Picture:
    try:
        with av.open(str(path), "r") as container:
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            codec = stream.codec_context.name
    except (av.error.FFmpegError, OSError, IndexError, StopIteration) as exc:
        raise InputError(f"input frame {path} cannot be read "
                         f"({getattr(exc, 'strerror', None) or exc}); check the file") from None
    if frame is None:
        raise InputError(f"input frame {path} holds no image")
    name = frame.format.name
    if "f32" in name or "f16" in name:
        raise InputError(f"input frame {path} is floating-point {codec} ({name}): it would be "
                         "clipped here; convert the plate to EXR, which is read in float")
    layout, depth = pix_fmt_layout(name)
    try:
        depth = max(int(c.bits) for c in frame.format.components)
    except (AttributeError, ValueError):
        pass
    alpha = layout_has_alpha(name)
    deep = depth > 8
    target = ("rgba64le" if deep else "rgba") if alpha else ("rgb48le" if deep else "rgb24")
    array = np.ascontiguousarray(frame.to_ndarray(format=target))
    rgb = np.ascontiguousarray(array[..., :3])
    return Picture(rgb=rgb, alpha=np.ascontiguousarray(array[..., 3]) if alpha else None,
                   codec=codec, pix_fmt=name, bit_depth=depth,
                   header=read_dpx_industry(path) if codec == "dpx" else {})


# DPX (SMPTE 268M): the file header's offsets, and the film and TV "industry" headers
_DPX_GENERIC = 1664  # file + image + orientation headers: all FFmpeg writes
_DPX_INDUSTRY = 384  # film (1664–1919) + TV (1920–2047) headers
_DPX_FILM_RATE, _DPX_TV_TIMECODE, _DPX_TV_RATE = 1724, 1920, 1940


def _dpx_order(head: bytes) -> str | None:
    return {b"SDPX": ">", b"XPDS": "<"}.get(bytes(head[:4]))


def _rate(value: float) -> Fraction | None:
    if not math.isfinite(value) or not 0 < value < 1000:
        return None
    return Fraction(value).limit_denominator(1001)


def read_dpx_industry(path: Path) -> dict[str, Any]:
    """A DPX file's film/TV headers: ``dpx_industry`` (their 384 bytes, written back
    unchanged), ``dpx_fps`` (film header's frame rate, else the TV header's) and
    ``dpx_timecode`` (the TV header's SMPTE timecode), each only when the file has it."""
    with open(path, "rb") as fh:
        head = fh.read(_DPX_GENERIC + _DPX_INDUSTRY)
    order = _dpx_order(head)
    if order is None or len(head) < _DPX_GENERIC + _DPX_INDUSTRY:
        return {}
    offset, = struct.unpack(order + "I", head[4:8])
    industry, = struct.unpack(order + "I", head[28:32])
    if offset < _DPX_GENERIC + _DPX_INDUSTRY or industry < _DPX_INDUSTRY:
        return {}
    out: dict[str, Any] = {"dpx_industry": head[_DPX_GENERIC:_DPX_GENERIC + _DPX_INDUSTRY],
                           "dpx_order": order}
    for at in (_DPX_FILM_RATE, _DPX_TV_RATE):
        rate = _rate(struct.unpack(order + "f", head[at:at + 4])[0])
        if rate is not None:
            out["dpx_fps"] = rate
            break
    tc, = struct.unpack(order + "I", head[_DPX_TV_TIMECODE:_DPX_TV_TIMECODE + 4])
    digits = f"{tc:08x}"
    if tc != 0xFFFFFFFF and digits.isdigit():
        out["dpx_timecode"] = ":".join(digits[i:i + 2] for i in range(0, 8, 2))
    return out


def add_dpx_industry(path: Path, industry: bytes) -> None:
    """Put 384 bytes of film/TV headers into a DPX FFmpeg wrote (a 1664-byte header): the
    image data moves to 2048 and the offsets and sizes that say so are updated."""
    data = bytearray(Path(path).read_bytes())
    order = _dpx_order(data)
    if order is None or struct.unpack(order + "I", data[4:8])[0] != _DPX_GENERIC:
        return
    struct.pack_into(order + "I", data, 4, _DPX_GENERIC + _DPX_INDUSTRY)  # image offset
    struct.pack_into(order + "I", data, 16, len(data) + _DPX_INDUSTRY)  # file size
    struct.pack_into(order + "I", data, 28, _DPX_INDUSTRY)  # industry header size
    element, = struct.unpack(order + "I", data[808:812])  # first image element's data offset
    if element == _DPX_GENERIC:
        struct.pack_into(order + "I", data, 808, _DPX_GENERIC + _DPX_INDUSTRY)
    Path(path).write_bytes(bytes(data[:_DPX_GENERIC]) + industry[:_DPX_INDUSTRY]
                           + bytes(data[_DPX_GENERIC:]))


def _openexr() -> Any:
    try:
        import OpenEXR
    except ImportError:
        raise UsageError("EXR files need the OpenEXR library: pip install "
                         "'gpen-video[plates]' (or pip install OpenEXR)") from None
    return OpenEXR


def _read_exr(path: Path) -> Picture:
    OpenEXR = _openexr()
    parts: list[tuple[str, dict[str, Any], dict[str, np.ndarray]]] = []
    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            for part in exr.parts:
                parts.append((part.name(), dict(part.header),
                              {name: ch.pixels for name, ch in part.channels.items()}))
    except Exception as exc:  # noqa: BLE001 - OpenEXR raises plain exceptions
        raise InputError(f"input frame {path} is not an EXR OpenEXR can read ({exc})") from None
    # the part restored: the first holding R, G and B (others are passed through)
    main = next((k for k, (_, _, ch) in enumerate(parts) if all(c in ch for c in "RGB")), 0)
    _, header, channels = parts[main]
    header = dict(header)
    missing = [c for c in "RGB" if c not in channels]
    if missing:
        raise InputError(f"input frame {path} has no {'/'.join(missing)} channel (it holds "
                         f"{', '.join(sorted(channels))}): only RGB(A) plates are restored")
    types = {channels[c].dtype for c in "RGB"}
    if len(types) != 1 or next(iter(types)).kind != "f":
        raise InputError(f"input frame {path}: R, G and B must share one float type "
                         f"(half or float), not {sorted(str(t) for t in types)}")
    rgb = np.ascontiguousarray(np.stack([channels[c] for c in "RGB"], axis=-1))
    alpha = channels.get("A")
    extra = {k: v for k, v in channels.items() if k not in _RGBA_CHANNELS}
    header.pop("channels", None)  # rebuilt from the channels on writing
    bits = 16 if rgb.dtype == np.float16 else 32
    return Picture(rgb=rgb, alpha=alpha, codec="exr", pix_fmt="half" if bits == 16 else "float",
                   bit_depth=bits, header=header, extra=extra,
                   parts=parts if len(parts) > 1 else [], part=main)


# ---------------------------------------------------------------------------- writing

# PyAV encoder and pixel format by (codec, alpha, deep)
_AV_FORMATS: dict[tuple[str, bool, bool], tuple[str, str]] = {
    ("png", False, False): ("png", "rgb24"), ("png", False, True): ("png", "rgb48be"),
    ("png", True, False): ("png", "rgba"), ("png", True, True): ("png", "rgba64be"),
    ("tiff", False, False): ("tiff", "rgb24"), ("tiff", False, True): ("tiff", "rgb48le"),
    ("tiff", True, False): ("tiff", "rgba"), ("tiff", True, True): ("tiff", "rgba64le"),
    ("mjpeg", False, False): ("mjpeg", "yuvj444p"), ("mjpeg", False, True): ("mjpeg", "yuvj444p"),
    ("dpx", False, False): ("dpx", "rgb24"), ("dpx", False, True): ("dpx", "rgb48le"),
    ("dpx", True, False): ("dpx", "rgba"), ("dpx", True, True): ("dpx", "rgba64le"),
}


def write_picture(path: str | Path, picture: Picture, codec: str | None = None,
                  pix_fmt: str | None = None) -> None:
    """Write ``picture`` to ``path`` as ``codec`` (default: from the suffix). Integer images
    keep their depth (``pix_fmt`` overrides the stored format, e.g. ``gbrp10le`` for 10-bit
    DPX); EXR keeps the header, the channels' half/float type and every extra channel.

    Raises:
        UsageError: a codec that cannot hold the picture (float into PNG, alpha into JPEG).
        OSError, av.error.FFmpegError: the disk or the encoder failed.
    """
    path = Path(path)
    codec = codec or suffix_codec(path)
    if codec == "exr":
        _write_exr(path, picture)
        return
    if picture.is_float:
        raise UsageError(f"{path.name}: a float (EXR) plate can only be written as EXR")
    if codec == "mjpeg" and picture.alpha is not None:
        raise UsageError(f"{path.name}: JPEG holds no alpha; write .png, .tif or .exr")
    deep = picture.rgb.dtype == np.uint16
    encoder, fmt = _AV_FORMATS[(codec, picture.alpha is not None, deep)]
    if pix_fmt is not None:
        fmt = pix_fmt
    if picture.alpha is not None:
        data = np.ascontiguousarray(np.dstack([picture.rgb, picture.alpha]))
        src_fmt = "rgba64le" if deep else "rgba"
    else:
        data = np.ascontiguousarray(picture.rgb)
        src_fmt = "rgb48le" if deep else "rgb24"
    h, w = data.shape[:2]
    frame = av.VideoFrame.from_ndarray(data, format=src_fmt)
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream(encoder, rate=25, options={"qscale": "2"} if codec == "mjpeg"
                                else {})
        stream.width, stream.height, stream.pix_fmt = w, h, fmt
        if codec == "mjpeg":
            stream.codec_context.color_range = 2
        converted = frame.reformat(format=fmt) if fmt != src_fmt else frame
        converted.pts = 0
        out.mux(stream.encode(converted))
        out.mux(stream.encode(None))
    if codec == "dpx" and "dpx_industry" in picture.header:
        add_dpx_industry(path, picture.header["dpx_industry"])


# EXR compressions whose re-encoding changes pixels already decoded from them (measured: DWAA
# and DWAB move untouched values by up to 0.023 on a second pass; B44 and PXR24 are stable)
_UNSTABLE_EXR = ("DWAA_COMPRESSION", "DWAB_COMPRESSION")


def exact_exr_header(header: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The header to write an EXR plate back with, and a note when it differs: DWAA/DWAB
    (lossy, not stable under re-encoding) become ZIP so that no untouched pixel changes;
    every other compression is kept."""
    compression = header.get("compression")
    name = getattr(compression, "name", str(compression))
    if name not in _UNSTABLE_EXR:
        return header, None
    OpenEXR = _openexr()
    return ({**header, "compression": OpenEXR.ZIP_COMPRESSION},
            f"{name.split('_')[0]} input written as ZIP (lossless): DWA re-compression would "
            "change pixels no face touched")


def _write_exr(path: Path, picture: Picture) -> None:
    OpenEXR = _openexr()
    if not picture.is_float:
        raise UsageError(f"{path.name}: EXR output is written from EXR plates only (an "
                         "integer source goes to .png, .tif or .dpx)")
    channels: dict[str, np.ndarray] = {c: np.ascontiguousarray(picture.rgb[..., i])
                                       for i, c in enumerate("RGB")}
    if picture.alpha is not None:
        channels["A"] = np.ascontiguousarray(picture.alpha)
    channels.update(picture.extra)
    header = dict(picture.header)
    header.setdefault("compression", OpenEXR.ZIP_COMPRESSION)
    header.setdefault("type", OpenEXR.scanlineimage)
    if not picture.parts:
        OpenEXR.File(header, channels).write(str(path))
        return
    parts = []
    for k, (name, part_header, part_channels) in enumerate(picture.parts):
        if k == picture.part:
            parts.append(OpenEXR.Part(header, channels, name))
        else:
            kept = {key: v for key, v in part_header.items() if key != "channels"}
            kept, _ = exact_exr_header(kept)
            parts.append(OpenEXR.Part(kept, dict(part_channels), name))
    OpenEXR.File(parts).write(str(path))
