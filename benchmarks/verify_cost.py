"""What ``stitch --verify none|packets|frames`` costs on 1080p FFV1 farm segments.

Builds a 1080p H.264 source (frames of a real clip scaled up, so FFV1 sees camera-like detail),
writes it as two lossless FFV1 segments exactly as a farm chunk does (``VideoSink`` with the
segment recorder: ``bgr0``, manifest beside each), then times, interleaved over the repeats:

* ``none``: reading the segments' packets and placing them on the source timeline (what every
  stitch does);
* ``packets``: + the manifests checked and every packet's sha1 compared;
* ``frames``: + every frame decoded and its picture's sha1 compared (the packet copy's extra
  decode);
* ``decode``: decoding alone — what a re-encoding stitch does anyway, so ``frames`` costs a
  re-encode only ``frames − decode − packets``.

Run: ``python benchmarks/verify_cost.py [--frames 200] [--repeats 3]``; results are seconds per
1,000 frames, written to ``benchmarks/results/verify_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpen_video.farm.manifest import SegmentJob, SegmentRecorder, source_identity  # noqa: E402
from gpen_video.farm.plan import lossless_encode  # noqa: E402
from gpen_video.farm.stitch import (check_pictures, place_segments, probe_segment,  # noqa: E402
                                    source_timeline, verify_segments)
from gpen_video.media import VideoSink, VideoSource  # noqa: E402
from gpen_video.options import RangeOptions  # noqa: E402

CLIP = REPO.parent / "shared" / "testdata" / "videos" / "liveportrait_d18.mp4"


def make_source(path: Path, frames: int) -> Path:
    with av.open(str(CLIP)) as inp:
        pictures = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(frames):
            big = cv2.resize(pictures[i % len(pictures)], (1920, 1080),
                             interpolation=cv2.INTER_CUBIC)
            frame = av.VideoFrame.from_ndarray(big, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def make_segments(source: Path, folder: Path, frames: int) -> list[Path]:
    """Two segments written as a farm chunk writes them (sink + recorder, lossless FFV1)."""
    half = frames // 2
    out = []
    for first, last in ((0, half - 1), (half, frames - 1)):
        seg = folder / f"seg-{first:06d}-{last:06d}.mkv"
        with VideoSource(source, RangeOptions(start=first, end=last)) as src:
            job = SegmentJob(source_identity(src), {"note": "verify_cost benchmark"})
            with VideoSink(seg, src, lossless_encode(8), recorder=SegmentRecorder(job)) as sink:
                for frame in src:
                    sink.write(frame)
        out.append(seg)
    return out


def timed(level: str, segments: list[Path], source: Path, span: tuple[int, int]) -> float:
    t = time.perf_counter()
    timeline = source_timeline(source)
    placed = place_segments([probe_segment(s) for s in segments], timeline, source, span)
    if level == "decode":
        for seg in placed:
            with av.open(str(seg.path)) as c:
                for _ in c.decode(c.streams.video[0]):
                    pass
        return time.perf_counter() - t
    if level != "none":
        records = verify_segments(placed, source, "packets")
        if level == "frames":
            for seg in placed:
                check_pictures(seg, records[seg.path])
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results"
                        / "verify_cost.json")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = make_source(tmp / "src.mp4", args.frames)
        segments = make_segments(source, tmp, args.frames)
        seg_bytes = sum(s.stat().st_size for s in segments)
        levels = ("none", "packets", "frames", "decode")
        times: dict[str, list[float]] = {k: [] for k in levels}
        for r in range(args.repeats):
            for level in (levels if r % 2 == 0 else levels[::-1]):
                times[level].append(timed(level, segments, source, (0, args.frames - 1)))
            loads.append(os.getloadavg()[0])
    per_1000 = {k: statistics.median(v) * 1000 / args.frames for k, v in times.items()}
    record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
              "frames": args.frames, "repeats": args.repeats, "size": "1920x1080",
              "segment_format": "FFV1 bgr0 in .mkv (lossless farm segments)",
              "segment_mb_per_frame": round(seg_bytes / args.frames / 1e6, 3),
              "load_1min": [round(x, 2) for x in loads],
              "seconds_per_1000_frames": {k: round(v, 2) for k, v in per_1000.items()},
              "extra_over_none": {k: round(per_1000[k] - per_1000["none"], 2)
                                  for k in ("packets", "frames")},
              "frames_extra_when_reencoding": round(
                  per_1000["frames"] - per_1000["decode"], 2),
              "all_seconds": times}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("seconds_per_1000_frames", "extra_over_none",
                                            "frames_extra_when_reencoding", "load_1min",
                                            "segment_mb_per_frame")}, indent=1))


if __name__ == "__main__":
    main()
