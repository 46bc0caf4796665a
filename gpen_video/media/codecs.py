"""Encoder choice as pure functions: source description + output path + options → EncoderSpec.

Nothing here opens a file or encodes a frame, so every rule is testable in microseconds
(``tests/test_media_codecs.py``). :class:`gpen_video.media.sink.VideoSink` applies the spec.

Rules (the product's defaults; ``EncodeOptions`` fields override them):

* The codec follows the source: H.264 → libx264 CRF 18, HEVC → libx265 CRF 18, ProRes → ProRes
  of the same profile, DNxHR → DNxHR of the same profile (DNxHD → DNxHR HQ/HQX), FFV1 → FFV1,
  anything else → H.264 CRF 18. If the output container cannot hold the source's codec (ProRes
  into .mp4), the default falls back to H.264 and says so in ``notes``; an explicit ``--codec``
  the container cannot hold is a :class:`UsageError`.
* The pixel format follows the source: same chroma subsampling and bit depth when the encoder
  takes them, else the nearest it takes (noted). Deep sources stay deep.
* An output path whose file name holds a printf pattern (``out_%06d.png``) is an image
  sequence: codec from ``--codec`` or the extension (png, tiff, exr, dpx).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from gpen_video.errors import UsageError
from gpen_video.options import EncodeOptions

# --codec name → FFmpeg encoder
ENCODERS: dict[str, str] = {
    "h264": "libx264",
    "hevc": "libx265",
    "prores": "prores_ks",
    "dnxhr": "dnxhd",
    "ffv1": "ffv1",
    "png": "png",
    "tiff": "tiff",
    "exr": "exr",
    "dpx": "dpx",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
}
IMAGE_CODECS = frozenset({"png", "tiff", "exr", "dpx"})
DEFAULT_CRF = 18

# Pixel formats each encoder accepts (FFmpeg 8.1; tests check this table against the build).
ENCODER_PIX_FMTS: dict[str, tuple[str, ...]] = {
    "libx264": ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                "gray", "gray10le"),
    "libx265": ("yuv420p", "yuv422p", "yuv444p", "gbrp", "yuv420p10le", "yuv422p10le",
                "yuv444p10le", "gbrp10le", "yuv420p12le", "yuv422p12le", "yuv444p12le",
                "gbrp12le", "gray", "gray10le", "gray12le"),
    "prores_ks": ("yuv422p10le", "yuv444p10le", "yuva444p10le"),
    "dnxhd": ("yuv422p", "yuv422p10le", "yuv444p10le", "gbrp10le"),
    "ffv1": ("yuv420p", "yuv422p", "yuv444p", "yuv440p", "yuv411p", "yuv410p",
             "yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le",
             "yuv444p12le", "yuv420p16le", "yuv422p16le", "yuv444p16le", "gbrp10le", "gbrp12le",
             "gbrp16le", "gray", "gray10le", "gray12le", "gray16le",
             "bgr0"),  # bgr0: 8-bit RGB, lossless farm segments (gpen_video.farm)
    "png": ("rgb24", "rgb48be"),
    "tiff": ("rgb24", "rgb48le"),
    "exr": ("gbrpf32le",),
    "dpx": ("rgb24", "rgb48le", "gbrp10le", "gbrp12le"),
    # this build's libvpx is 8-bit only; SVT-AV1 takes 4:2:0 at 8 and 10 bits
    "libvpx-vp9": ("yuv420p", "yuv422p", "yuv440p", "yuv444p", "gbrp"),
    "libsvtav1": ("yuv420p", "yuv420p10le"),
}
# constant-quality defaults of the web codecs (their CRF scales differ from x264's)
WEB_CRF = {"vp9": 24, "av1": 30}

# Output file suffix → (FFmpeg muxer, codec families it holds).
CONTAINERS: dict[str, tuple[str, frozenset[str]]] = {
    ".mp4": ("mp4", frozenset({"h264", "hevc", "ffv1", "png"})),
    ".m4v": ("mp4", frozenset({"h264", "hevc", "ffv1", "png"})),
    ".mov": ("mov", frozenset({"h264", "hevc", "prores", "dnxhr", "png", "tiff", "exr", "dpx"})),
    ".qt": ("mov", frozenset({"h264", "hevc", "prores", "dnxhr", "png", "tiff", "exr", "dpx"})),
    ".mkv": ("matroska", frozenset({"h264", "hevc", "prores", "ffv1", "vp9", "av1"})),
    ".webm": ("webm", frozenset({"vp9", "av1"})),
}
# what a container delivers when the codec follows the source: FFmpeg's MP4 muxer takes FFV1
# and PNG (the farm's intra segments use it), but MP4 players do not play them, so a run that
# follows a PNG or FFV1 source into .mp4 writes H.264 and says so; --codec still writes them
DELIVERED: dict[str, frozenset[str]] = {".mp4": frozenset({"h264", "hevc"}),
                                        ".m4v": frozenset({"h264", "hevc"})}
IMAGE_SUFFIXES: dict[str, str] = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".exr": "exr",
                                  ".dpx": "dpx"}

# ProRes: decoder profile name → prores_ks ``profile`` option, pixel format
PRORES_PROFILES: dict[str, tuple[str, str]] = {
    "proxy": ("proxy", "yuv422p10le"),
    "lt": ("lt", "yuv422p10le"),
    "standard": ("standard", "yuv422p10le"),
    "hq": ("hq", "yuv422p10le"),
    "4444": ("4444", "yuv444p10le"),
    "xq": ("4444xq", "yuv444p10le"),
    "4444 xq": ("4444xq", "yuv444p10le"),
    "4444xq": ("4444xq", "yuv444p10le"),
}
# ProRes bit budget per macroblock for re-encoding: 1.5x the profile's full-HD target in
# prores_ks, which lets the quantiser reach its floor on ordinary footage, so a decode → encode
# generation loses less than at the default budget, for a somewhat larger file (measured:
# benchmarks/RESULTS.md, "Numbers behind design choices"). The profile (fourcc) is unchanged.
PRORES_BITS_PER_MB: dict[str, int] = {"proxy": 450, "lt": 1080, "standard": 1575, "hq": 2350,
                                      "4444": 3525, "4444xq": 5288}
# DNxHR: decoder profile name → dnxhd ``profile`` option, pixel format
DNXHR_PROFILES: dict[str, tuple[str, str]] = {
    "dnxhr lb": ("dnxhr_lb", "yuv422p"),
    "dnxhr sq": ("dnxhr_sq", "yuv422p"),
    "dnxhr hq": ("dnxhr_hq", "yuv422p"),
    "dnxhr hqx": ("dnxhr_hqx", "yuv422p10le"),
    "dnxhr 444": ("dnxhr_444", "yuv444p10le"),
}
# Source decoder name → codec family (families we can also encode)
SOURCE_FAMILIES: dict[str, str] = {
    "h264": "h264", "hevc": "hevc", "prores": "prores", "dnxhd": "dnxhr", "ffv1": "ffv1",
    "png": "png", "tiff": "tiff", "exr": "exr", "dpx": "dpx",
    "vp9": "vp9", "libvpx-vp9": "vp9", "av1": "av1", "libdav1d": "av1",
}

# readable names of source codecs we decode but do not write (for the note and the summary)
CODEC_NAMES: dict[str, str] = {
    "mpeg4": "MPEG-4 Part 2", "msmpeg4v3": "MPEG-4 Part 2 (MS)", "mpeg2video": "MPEG-2",
    "mpeg1video": "MPEG-1", "mjpeg": "Motion JPEG", "vp8": "VP8", "vp9": "VP9", "av1": "AV1",
    "libdav1d": "AV1", "h263": "H.263", "theora": "Theora", "wmv3": "WMV 9", "vc1": "VC-1",
}


def codec_name(codec: str) -> str:
    """``MPEG-4 Part 2 (mpeg4)`` for codecs with a readable name, else the FFmpeg name."""
    return f"{CODEC_NAMES[codec]} ({codec})" if codec in CODEC_NAMES else codec


_PATTERN_RE = re.compile(r"%0?\d*d")
# chroma resolution rank of a layout: a note is due only when the output has less than the source
_CHROMA_DETAIL = {"gray": 0, "410": 1, "411": 1, "420": 2, "440": 3, "422": 3, "444": 4, "rgb": 4}


@dataclass(frozen=True)
class SourceVideoInfo:
    """What codec choice needs to know about the source video stream."""

    codec: str  # FFmpeg decoder name: h264, hevc, prores, dnxhd, ...
    profile: str | None  # decoder profile name: "High", "HQ", "DNXHR HQX", ...
    pix_fmt: str  # decoded pixel format, e.g. yuv420p, yuv422p10le
    bit_depth: int  # bits per component of pix_fmt (8, 10, 12, 16)
    width: int = 0  # coded size (0: unknown; only used for encoder size limits)
    height: int = 0
    # HDR10 static metadata, as in FFmpeg's side data (None: the source has none):
    # mastering display = (R x, R y, G x, G y, B x, B y, white x, white y) chromaticities and
    # (min, max) luminance in cd/m²; light level = (MaxCLL, MaxFALL) in cd/m².
    mastering_display: tuple[tuple[float, ...], tuple[float, float]] | None = None
    light_level: tuple[int, int] | None = None
    alpha: bool = False  # the source hands its alpha plane on (gpen_video.media.alpha)


@dataclass(frozen=True)
class EncoderSpec:
    """How to encode the output video. Built by :func:`choose_encoder`; applied by the sink."""

    family: str  # h264 | hevc | prores | dnxhr | ffv1 | png | tiff | exr | dpx
    encoder: str  # FFmpeg encoder name (libx264, prores_ks, ...)
    pix_fmt: str  # encoder input pixel format
    options: dict[str, str] = field(default_factory=dict)  # encoder AVOptions
    container: str = "mp4"  # FFmpeg muxer (mp4, mov, matroska, image2)
    image_sequence: bool = False
    notes: tuple[str, ...] = ()  # what differs from the source and why (shown as warnings)

    @property
    def rgb_input(self) -> bool:
        """True if the encoder takes RGB (no YUV matrix involved)."""
        return self.pix_fmt.startswith(("rgb", "gbr", "bgr"))


def x265_hdr_params(source: SourceVideoInfo) -> str:
    """``x265-params`` entries that re-emit the source's HDR10 static metadata SEI
    (``master-display``: chromaticity in 0.00002 units, G B R order; luminance in 0.0001 cd/m²;
    ``max-cll``), empty if the source has none."""
    parts = []
    if source.mastering_display is not None:
        (rx, ry, gx, gy, bx, by, wx, wy), (lo, hi) = source.mastering_display

        def c(v: float) -> int:
            return int(round(v * 50000))

        parts.append(f"master-display=G({c(gx)},{c(gy)})B({c(bx)},{c(by)})R({c(rx)},{c(ry)})"
                     f"WP({c(wx)},{c(wy)})L({int(round(hi * 10000))},{int(round(lo * 10000))})")
    if source.light_level is not None:
        parts.append(f"max-cll={source.light_level[0]},{source.light_level[1]}")
    return ":".join(parts)


def is_image_sequence(path: str | Path) -> bool:
    """True if the file name holds a printf frame-number pattern (``%d``, ``%06d``)."""
    return bool(_PATTERN_RE.search(Path(path).name))


def output_container(path: str | Path) -> str:
    """FFmpeg muxer name for an output path (``image2`` for sequences).

    Raises:
        UsageError: unknown suffix (lists the known ones).
    """
    path = Path(path)
    if is_image_sequence(path):
        return "image2"
    suffix = path.suffix.lower()
    if suffix not in CONTAINERS:
        known = ", ".join(sorted(CONTAINERS)) + " or an image pattern like out_%06d.png"
        raise UsageError(f"output {path.name!r}: unknown file type {suffix or '(none)'}; "
                         f"use {known}")
    return CONTAINERS[suffix][0]


def pix_fmt_layout(pix_fmt: str) -> tuple[str, int]:
    """``yuv422p10le`` → (``"422"``, 10); RGB → (``"rgb"``, depth); gray → (``"gray"``, depth).

    Pure name parsing; depth is 8 when no number is given.
    """
    name = pix_fmt.lower()
    depth_match = re.search(r"p(\d+)(le|be)?$|(\d+)(le|be)$", name)
    depth = 8
    if depth_match:
        depth = int(depth_match.group(1) or depth_match.group(3))
    if name in ("rgb48le", "rgb48be", "rgba64le", "rgba64be", "bgr48le", "bgr48be"):
        depth = 16
    if name.startswith("yuvj"):
        name = "yuv" + name[4:]
    if name.startswith(("gray", "ya")):
        return "gray", depth
    if name.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr")):
        return "rgb", depth
    if name.startswith(("nv12", "nv21", "p010", "p016", "p012")):
        return "420", 8 if name.startswith(("nv12", "nv21")) else depth
    if name.startswith(("nv16", "nv20", "p210", "p216", "y210", "yuyv422", "uyvy422")):
        return "422", depth if not name.startswith(("nv16", "yuyv", "uyvy")) else 8
    if name.startswith(("nv24", "nv42", "p410", "p416")):
        return "444", depth
    m = re.match(r"yuva?(4\d\d)", name)
    if m:
        return m.group(1), depth
    return "420", depth


def layout_has_alpha(pix_fmt: str) -> bool:
    """True for pixel formats with an alpha plane (yuva*, gbrap*, rgba*, ya*, ...)."""
    name = pix_fmt.lower()
    return name.startswith(("yuva", "gbrap", "rgba", "bgra", "argb", "abgr", "ya8", "ya16"))


def _nearest_pix_fmt(encoder: str, layout: str, depth: int) -> str:
    """Best pixel format of ``encoder`` for a source ``layout``/``depth``: same chroma and the
    smallest depth ≥ the source's (else the deepest), preferring YUV for YUV sources."""
    accepted = ENCODER_PIX_FMTS[encoder]
    candidates = [(pix_fmt_layout(f), f) for f in accepted]

    def score(item: tuple[tuple[str, int], str]) -> tuple[int, int, int]:
        (lay, dep), _ = item
        chroma_rank = 0 if lay == layout else (1 if lay in ("444", "rgb") else 2)
        if layout == "rgb" and lay == "444":
            chroma_rank = 1
        if layout == "gray" and lay != "gray":
            chroma_rank = 1 if lay == "420" else 2
        depth_rank = 0 if dep >= depth else 1
        return (chroma_rank, depth_rank, dep if dep >= depth else -dep)

    return min(candidates, key=score)[1]


def default_family(source: SourceVideoInfo) -> str:
    """The codec family that follows the source (h264 for anything we do not encode)."""
    return SOURCE_FAMILIES.get(source.codec, "h264")


def choose_encoder(source: SourceVideoInfo, output: str | Path,
                   options: EncodeOptions | None = None) -> EncoderSpec:
    """The encoder, pixel format and options for writing ``source`` to ``output``.

    Raises:
        UsageError: unknown codec or suffix, a codec the container cannot hold, a pixel format
            the encoder does not take, or ``crf``/``preset`` for a codec without them.
    """
    options = options or EncodeOptions()
    output = Path(output)
    container = output_container(output)
    sequence = container == "image2"
    notes: list[str] = []

    if options.codec is not None and options.codec not in ENCODERS:
        raise UsageError(f"--codec {options.codec!r}: choose one of {', '.join(ENCODERS)}")
    family = (_sequence_family(output, options) if sequence
              else _container_family(source, output, options, notes))

    encoder = ENCODERS[family]
    layout, depth = pix_fmt_layout(source.pix_fmt)
    depth = max(depth, source.bit_depth)
    if options.crf is not None and family not in ("h264", "hevc", "vp9", "av1"):
        raise UsageError(f"--crf applies to h264, hevc, vp9 and av1, not {family}")
    if options.preset is not None and family not in ("h264", "hevc"):
        raise UsageError(f"--preset applies to h264 and hevc, not {family}")
    pix_fmt, codec_options = _family_settings(family, source, options, layout, depth, notes)

    if family != "hevc" and (source.mastering_display is not None
                             or source.light_level is not None):
        notes.append("the source's HDR mastering-display / light-level metadata is kept only "
                     "by hevc output")
    if layout_has_alpha(source.pix_fmt) and not (source.alpha and layout_has_alpha(pix_fmt)):
        notes.append(f"the source's alpha channel ({source.pix_fmt}) is not processed and is "
                     "not written" + (" (ProRes 4444 in .mov keeps it)" if source.alpha else ""))
    if options.pix_fmt is not None:
        if options.pix_fmt not in ENCODER_PIX_FMTS[encoder]:
            raise UsageError(f"--pix-fmt {options.pix_fmt}: {family} takes "
                             f"{', '.join(ENCODER_PIX_FMTS[encoder])}")
        pix_fmt = options.pix_fmt
    else:
        _note_lost_detail(family, source, pix_fmt, layout, depth, sequence, notes)

    _check_chroma_fits(family, pix_fmt, source, options.pix_fmt is not None)
    return EncoderSpec(family=family, encoder=encoder, pix_fmt=pix_fmt, options=codec_options,
                       container=container, image_sequence=sequence, notes=tuple(notes))


# encoders that refuse a size their chroma subsampling does not divide (x264 and x265 stop with
# FFmpeg's "Generic error in an external library" after the models have loaded)
_EVEN_SIZE_ENCODERS = frozenset({"h264", "hevc"})


def _check_chroma_fits(family: str, pix_fmt: str, source: SourceVideoInfo,
                       asked: bool) -> None:
    """Raises UsageError, before anything loads, when ``pix_fmt`` subsamples chroma across an
    odd width or height of the source (coded size) for an encoder that refuses it."""
    import av

    if family not in _EVEN_SIZE_ENCODERS or not (source.width and source.height):
        return
    chroma = av.VideoFormat(pix_fmt, 2, 2).components[-1]  # a chroma plane of a 2×2 picture
    odd = [(name, n) for name, n, halved in (("width", source.width, chroma.width == 1),
                                             ("height", source.height, chroma.height == 1))
           if halved and n % 2]
    if not odd:
        return
    full = "yuv444p10le" if pix_fmt_layout(pix_fmt)[1] > 8 else "yuv444p"
    which = " and ".join(f"{name} {n}" for name, n in odd)
    chosen = "--pix-fmt" if asked else "following the source"
    raise UsageError(f"{family} cannot encode {pix_fmt} ({chosen}) at an odd {which} "
                     f"({source.width}x{source.height}): its chroma is halved there; add "
                     f"--pix-fmt {full} (full chroma, any size), or write .mkv with --codec ffv1")


def _sequence_family(output: Path, options: EncodeOptions) -> str:
    """The image codec of an image-sequence ``output`` (from ``--codec`` or the suffix)."""
    from_suffix = IMAGE_SUFFIXES.get(output.suffix.lower())
    family = options.codec or from_suffix
    if family not in IMAGE_CODECS:
        raise UsageError(
            f"output {output.name!r} is an image sequence: use a .png, .tif, .exr or .dpx "
            f"pattern (or --codec png|tiff|exr|dpx)")
    if from_suffix is not None and from_suffix != family:
        raise UsageError(f"--codec {family} does not match the file type of {output.name!r}")
    return family


def _container_family(source: SourceVideoInfo, output: Path, options: EncodeOptions,
                      notes: list[str]) -> str:
    """The codec for a video file ``output``: ``--codec``, else the source's if it fits."""
    holds = CONTAINERS[output.suffix.lower()][1]
    if options.codec is not None:
        family = options.codec
        if family not in holds:
            good = sorted(s for s, (_, fams) in CONTAINERS.items() if family in fams)
            hint = (f"use a {' or '.join(good)} file" if good
                    else "write an image sequence like out_%06d." + family)
            raise UsageError(f"{output.suffix} cannot hold {family}: {hint}")
        return family
    family = default_family(source)
    fallback = "h264" if "h264" in holds else "vp9"  # .webm holds VP9/AV1 only
    shown = {"h264": "H.264", "vp9": "VP9"}[fallback]
    if source.codec not in SOURCE_FAMILIES:
        family = fallback
        notes.append(f"the source's codec, {codec_name(source.codec)}, has no encoder here: "
                     f"writing {shown} (choose another with --codec)")
    if family not in holds or family not in DELIVERED.get(output.suffix.lower(), holds):
        good = sorted(s for s, (_, fams) in CONTAINERS.items() if family in fams
                      and family in DELIVERED.get(s, fams))
        notes.append(f"{output.suffix} cannot hold {family} (the source's codec) for players: "
                     f"writing {shown} instead; use {' or '.join(good) or 'another file type'} "
                     f"to keep {family}")
        family = fallback
    return family


def _family_settings(family: str, source: SourceVideoInfo, options: EncodeOptions, layout: str,
                     depth: int, notes: list[str]) -> tuple[str, dict[str, str]]:
    """The pixel format and encoder options ``family`` gets for ``source``."""
    encoder = ENCODERS[family]
    codec_options: dict[str, str] = {}
    profile = (source.profile or "").strip().lower()
    if family in ("h264", "hevc"):
        codec_options["crf"] = str(DEFAULT_CRF if options.crf is None else options.crf)
        if options.preset is not None:
            codec_options["preset"] = options.preset
        if family == "hevc":
            hdr = x265_hdr_params(source)
            codec_options["x265-params"] = "log-level=error" + (":" + hdr if hdr else "")

        pix_fmt = _nearest_pix_fmt(encoder, layout, depth)
    elif family in ("vp9", "av1"):
        crf = WEB_CRF[family] if options.crf is None else options.crf
        if family == "vp9":  # constant quality; row threads; 'good' at a usable speed
            codec_options.update({"crf": str(crf), "b": "0", "row-mt": "1",
                                  "deadline": "good", "cpu-used": "4"})
        else:
            codec_options.update({"crf": str(crf), "preset": "8"})
        pix_fmt = _nearest_pix_fmt(encoder, layout, depth)
    elif family == "prores":
        if source.codec == "prores" and profile in PRORES_PROFILES:
            name, pix_fmt = PRORES_PROFILES[profile]
        elif layout in ("444", "rgb"):
            name, pix_fmt = "4444", "yuv444p10le"
        else:
            name, pix_fmt = "hq", "yuv422p10le"
        if source.alpha and name.startswith("4444"):
            pix_fmt = "yuva444p10le"  # alpha carried bit for bit (gpen_video.media.alpha)
        codec_options["profile"] = name
        codec_options["bits_per_mb"] = str(PRORES_BITS_PER_MB[name])
        codec_options["vendor"] = "apl0"  # what Apple's tools write; some NLEs check it
    elif family == "dnxhr":
        name, pix_fmt = _dnxhr_profile(source, profile, layout, depth, notes)
        codec_options["profile"] = name
    elif family == "ffv1":
        pix_fmt = (source.pix_fmt if source.pix_fmt in ENCODER_PIX_FMTS["ffv1"]
                   else _nearest_pix_fmt(encoder, layout, depth))
        codec_options["level"] = "3"  # multithreaded slices, per-slice CRCs
        codec_options["slicecrc"] = "1"
    elif family == "exr":
        pix_fmt = "gbrpf32le"
    elif family == "dpx":
        pix_fmt = {8: "rgb24", 10: "gbrp10le", 12: "gbrp12le"}.get(depth, "rgb48le")
    else:  # png, tiff
        pix_fmt = ENCODER_PIX_FMTS[encoder][0 if depth <= 8 else 1]
    return pix_fmt, codec_options


def _dnxhr_profile(source: SourceVideoInfo, profile: str, layout: str, depth: int,
                   notes: list[str]) -> tuple[str, str]:
    """DNxHR profile name and pixel format for ``source``."""
    if 0 < source.width < 256 or 0 < source.height < 120:
        raise UsageError(f"DNxHR needs at least 256x120 pixels; the source is "
                         f"{source.width}x{source.height}: use --codec prores or ffv1")
    if source.codec == "dnxhd" and profile in DNXHR_PROFILES:
        return DNXHR_PROFILES[profile]
    if layout in ("444", "rgb"):
        name, pix_fmt = "dnxhr_444", "yuv444p10le"
    elif depth > 8:
        name, pix_fmt = "dnxhr_hqx", "yuv422p10le"
    else:
        name, pix_fmt = "dnxhr_hq", "yuv422p"
    if source.codec == "dnxhd":
        notes.append(f"DNxHD ({source.profile}) is written as DNxHR {name[6:].upper()}: "
                     "DNxHD's fixed bitrates are tied to broadcast frame sizes")
    return name, pix_fmt


def _note_lost_detail(family: str, source: SourceVideoInfo, pix_fmt: str, layout: str,
                      depth: int, sequence: bool, notes: list[str]) -> None:
    """A note when ``pix_fmt`` stores less depth or chroma than the source had."""
    out_layout, out_depth = pix_fmt_layout(pix_fmt)
    src_norm = source.pix_fmt.replace("yuvj", "yuv")
    if pix_fmt != src_norm and not (out_layout == "rgb" and sequence):
        if out_depth < depth:
            notes.append(f"{family} cannot store {source.pix_fmt}: writing {pix_fmt} "
                         f"({depth}-bit source, {out_depth}-bit output)")
        elif _CHROMA_DETAIL.get(out_layout, 0) < _CHROMA_DETAIL.get(layout, 0):
            notes.append(f"{family} cannot store {source.pix_fmt}: writing {pix_fmt} "
                         "(less chroma resolution)")
