"""Synthesise small test videos with PyAV and read back what matters (timing, packets, tags).

Every clip is made in-process (DESIGN §8): a few dozen frames at 64–256 px, so the media suite
stays fast on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class AudioSpec:
    """One synthetic audio track (a sine tone)."""

    codec: str = "aac"
    rate: int = 48000
    layout: str = "stereo"
    seconds: float = 2.0
    start: float = 0.0  # seconds after the video starts
    language: str | None = None
    default: bool = True
    frequency: float = 440.0


@dataclass
class VideoSpec:
    """A synthetic clip. ``pts`` (in ``time_base`` units) overrides ``n``/``rate`` for VFR."""

    n: int = 24
    width: int = 96
    height: int = 64
    rate: Fraction = Fraction(24)
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=dict)
    time_base: Fraction | None = None
    pts: list[int] | None = None
    rotation: int | None = None  # counter-clockwise degrees (PyAV convention)
    timecode: str | None = None
    colour: dict[str, int] = field(default_factory=dict)  # color_range, color_primaries, ...
    sar: Fraction | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # container metadata
    audio: list[AudioSpec] = field(default_factory=list)
    subtitles: list[tuple[float, float, str]] = field(default_factory=list)  # mov_text cues
    deep: bool = False  # synthesise 16-bit RGB content (for >8-bit formats)
    noise: float = 0.0  # add noise (bigger packets, e.g. for corruption tests)
    content: str = "pattern"  # pattern (hard edges) | smooth (gradients and a soft blob)
    images: list[np.ndarray] | None = None  # explicit RGB frames (override content)


def pattern_image(i: int, width: int, height: int, deep: bool = False, noise: float = 0.0
               ) -> np.ndarray:
    """A smooth moving gradient with a bright square: frame ``i`` of a test clip (RGB)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.4 * np.sin(xx / 9.0 + i / 3.0)
    g = 0.5 + 0.4 * np.cos(yy / 7.0 - i / 5.0)
    b = (xx + yy + 4 * i) % 97 / 97.0
    img = np.stack([r, g, b], -1)
    x0 = (5 * i) % max(1, width - 16)
    img[8:24, x0:x0 + 16] = 0.95
    if noise:
        img += np.random.default_rng(i).normal(0, noise, img.shape).astype(np.float32)
    img = np.clip(img, 0, 1)
    if deep:
        return (img * 65535 + 0.5).astype(np.uint16)
    return (img * 255 + 0.5).astype(np.uint8)


def smooth_image(i: int, width: int, height: int, deep: bool = False) -> np.ndarray:
    """Camera-like content: smooth gradients and a soft moving blob (no hard edges)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.4 * np.sin(xx / 9.0 + i / 3.0)
    g = 0.5 + 0.4 * np.cos(yy / 7.0 - i / 5.0)
    b = 0.5 + 0.3 * np.sin((xx + yy) / 13.0 + i / 4.0)
    img = np.stack([r, g, b], -1)
    d = np.hypot(xx - (20 + 5 * i) % width, yy - height / 3)
    img += (0.3 * np.exp(-(d / 8) ** 2))[..., None]
    img = np.clip(img, 0, 1)
    if deep:
        return (img * 65535 + 0.5).astype(np.uint16)
    return (img * 255 + 0.5).astype(np.uint8)


def make_video(path: Path, spec: VideoSpec, container_format: str | None = None) -> Path:
    """Write ``spec`` to ``path`` with PyAV (video first, then interleaved audio/subtitles)."""
    out = av.open(str(path), "w", format=container_format)
    out.metadata.update(spec.metadata)
    stream = out.add_stream(spec.codec, rate=spec.rate, options=dict(spec.options))
    stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, spec.pix_fmt
    time_base = spec.time_base or (1 / Fraction(spec.rate))
    stream.codec_context.time_base = time_base
    stream.time_base = time_base
    for key, value in spec.colour.items():
        setattr(stream.codec_context, key, value)
    if spec.sar:
        stream.codec_context.sample_aspect_ratio = spec.sar
    if spec.rotation is not None:
        stream.set_display_rotation(spec.rotation)
    if spec.timecode:
        stream.metadata["timecode"] = spec.timecode
    audio_streams = []
    for a in spec.audio:
        astream = out.add_stream(a.codec, rate=a.rate)
        astream.codec_context.layout = a.layout
        if a.language:
            astream.metadata["language"] = a.language
        audio_streams.append(astream)
    sub_stream = out.add_mux_stream("mov_text") if spec.subtitles else None

    n = len(spec.images) if spec.images is not None else spec.n
    pts_list = spec.pts if spec.pts is not None else [
        int(round(i / spec.rate / time_base)) for i in range(n)]
    deep = spec.deep if spec.images is None else spec.images[0].dtype == np.uint16
    fmt = "rgb48le" if deep else "rgb24"
    for i, pts in enumerate(pts_list):
        if spec.images is not None:
            img = spec.images[i]
        elif spec.content == "smooth":
            img = smooth_image(i, spec.width, spec.height, spec.deep)
        else:
            img = pattern_image(i, spec.width, spec.height, spec.deep, spec.noise)
        frame = av.VideoFrame.from_ndarray(img, format=fmt)
        frame = frame.reformat(format=spec.pix_fmt, dst_colorspace=_sws(spec.colour),
                               dst_color_range=spec.colour.get("color_range", 1) or 1)
        for key, value in spec.colour.items():
            setattr(frame, key.replace("color_range", "color_range"), value)
        frame.pts = pts
        frame.time_base = time_base
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))

    for a, astream in zip(spec.audio, audio_streams):
        ctx = astream.codec_context
        size = ctx.frame_size or 1024
        total = int(a.seconds * a.rate)
        channels = 2 if a.layout == "stereo" else 1
        fmt = ctx.format.name
        start = int(round(a.start * a.rate))
        for s0 in range(0, total, size):
            n = min(size, total - s0)
            t = (np.arange(s0, s0 + n) / a.rate).astype(np.float32)
            wave = 0.3 * np.sin(2 * np.pi * a.frequency * t)
            data = np.tile(wave, (channels, 1))
            if fmt.endswith("p"):
                arr = data.astype(_np_sample(fmt))
            else:
                arr = data.T.reshape(1, -1).astype(_np_sample(fmt))
            if _np_sample(fmt) == np.int16:
                arr = (data * 32767).astype(np.int16) if fmt.endswith("p") else \
                    (data.T.reshape(1, -1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=a.layout)
            frame.sample_rate = a.rate
            frame.pts = start + s0
            frame.time_base = Fraction(1, a.rate)
            out.mux(astream.encode(frame))
        out.mux(astream.encode(None))
        astream.disposition = int(av.stream.Disposition.default) if a.default else 0

    if sub_stream is not None:
        _write_subtitles(out, sub_stream, spec.subtitles)
    out.close()
    return path


def _write_subtitles(out: av.container.OutputContainer, stream: av.stream.Stream,
                     cues: list[tuple[float, float, str]]) -> None:
    tb = Fraction(1, 1000)
    for start, end, text in cues:
        raw = text.encode()
        packet = av.Packet(len(raw).to_bytes(2, "big") + raw)
        packet.pts = packet.dts = int(start * 1000)
        packet.duration = int((end - start) * 1000)
        packet.time_base = tb
        packet.stream = stream
        out.mux(packet)


def _np_sample(fmt: str) -> type:
    return {"flt": np.float32, "fltp": np.float32, "s16": np.int16, "s16p": np.int16,
            "s32": np.int32, "s32p": np.int32, "dbl": np.float64}.get(fmt, np.float32)


def _sws(colour: dict[str, int]) -> int | None:
    matrix = colour.get("colorspace")
    return {1: 1, 5: 5, 6: 5, 9: 9}.get(matrix) if matrix else None


# ---------------------------------------------------------------------------- reading back


def frame_times(path: Path) -> list[Fraction]:
    """Presentation time (s, exact) of every decoded video frame, in output order."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [f.pts * f.time_base for f in c.decode(s)]


def video_packet_times(path: Path) -> list[tuple[Fraction, Fraction]]:
    """(pts, duration) in seconds of every video packet, sorted by pts (no decoding).

    Durations are the container's per-packet ones (for MP4, decode-order sample durations),
    so compare them only between files with the same frame-type structure.
    """
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        out = [(p.pts * p.time_base, (p.duration or 0) * p.time_base)
               for p in c.demux(s) if p.dts is not None and not p.is_discard]
    return sorted(out)


def video_end(path: Path) -> Fraction:
    """End of the video track in seconds: its start plus its duration, as the container says
    (for MP4/MOV the sum of sample durations, so the last frame's duration counts)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return ((s.start_time or 0) + (s.duration or 0)) * s.time_base


def stream_packets(path: Path, kind: str) -> list[list[tuple[bytes, Fraction | None]]]:
    """Per stream of ``kind`` (audio/subtitle): every packet's (bytes, pts in seconds)."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        result: dict[int, list] = {s.index: [] for s in streams}
        if streams:
            for p in c.demux(*streams):
                if p.dts is None and p.size == 0:
                    continue
                result[p.stream.index].append(
                    (bytes(p), None if p.pts is None else p.pts * p.time_base))
        return [result[s.index] for s in streams]


def stream_info(path: Path) -> list[dict]:
    """Per stream: type, codec, profile, language, disposition, metadata, pix_fmt, tags."""
    info = []
    with av.open(str(path)) as c:
        for s in c.streams:
            cc = s.codec_context
            d = {"type": s.type, "codec": cc.name if cc else None, "metadata": dict(s.metadata),
                 "language": s.metadata.get("language"), "disposition": int(s.disposition)}
            if s.type == "video":
                d.update(profile=s.profile, pix_fmt=cc.pix_fmt, width=cc.width,
                         height=cc.height, color_range=int(cc.color_range),
                         color_primaries=int(cc.color_primaries), color_trc=int(cc.color_trc),
                         colorspace=int(cc.colorspace), sar=s.sample_aspect_ratio,
                         time_base=s.time_base)
            info.append(d)
        info.append({"type": "container", "metadata": dict(c.metadata)})
    return info


def frame_mae_255(a: list[list[np.ndarray]], b: list[list[np.ndarray]], depth: int
                  ) -> list[float]:
    """Per frame: mean abs difference over every sample of every plane, on a 0–255 scale."""
    scale = 255 / (2 ** depth - 1)
    out = []
    for fa, fb in zip(a, b):
        total = sum(float(np.abs(pa - pb).sum()) for pa, pb in zip(fa, fb))
        out.append(total / sum(pa.size for pa in fa) * scale)
    return out


def decoded_planes(path: Path, limit: int | None = None) -> list[list[np.ndarray]]:
    """Raw decoded planes (as float arrays in native bit depth) of each frame."""
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if limit is not None and i >= limit:
                break
            planes = []
            for p in f.planes:
                bpp = 2 if p.line_size >= 2 * p.width and f.format.name.endswith(("le", "be")) \
                    else 1
                dtype = np.uint16 if bpp == 2 else np.uint8
                arr = np.frombuffer(p, dtype).reshape(p.height, p.line_size // bpp)[:, :p.width]
                planes.append(arr.astype(np.float64))
            out.append(planes)
    return out


def damaged_clip(tmp_path: Path) -> tuple[Path, Path]:
    """A 36-frame H.264 clip and a copy whose packet #20 (a P/B frame) holds garbage."""
    src = make_video(tmp_path / "good.mp4", VideoSpec(n=36, noise=0.08,
                                                      audio=[AudioSpec(seconds=1.5)]))
    with av.open(str(src)) as c:
        packets = [(p.pos, p.size, p.is_keyframe) for p in c.demux(video=0)
                   if p.dts is not None]
    pos, size, key = packets[20]
    assert not key and size > 200
    data = bytearray(src.read_bytes())
    data[pos + 6: pos + size] = np.random.default_rng(7).integers(
        0, 256, size - 6, np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    return src, bad
