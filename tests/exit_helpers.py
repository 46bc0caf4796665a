"""Helpers for the exit-path tests: damaged inputs made in the test, real ``gpen-video``
processes, and instruments that hold a pipeline thread inside ONNX Runtime or make a write fail.

Every process here is a real interpreter running the product's entry point
(``python -m gpen_video``, or ``gpen_video.cli.console()`` after an instrument is installed by
``python -c``), so exit codes, signal handling and interpreter teardown are the real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from tests.media_helpers import AudioSpec, VideoSpec, make_video

REPO = Path(__file__).resolve().parents[1]
DETECTOR = "detection_mobilenet0.25_Final.pth"


def env(**extra: str) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""),
            **extra}


def run_args(testdata: Path, src: Path, out: Path, model: Path, *extra: str) -> list[str]:
    """A CPU run with the small random-weight GPEN and the MobileNet detector (no --detector:
    the network is inferred from the weights file)."""
    return [str(src), str(out), "--model", str(model), "--detector-weights",
            str(testdata / "weights" / DETECTOR), "--device", "cpu", "--backend", "torch",
            *extra]


def gpen_video(args: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpen_video", *args], env=env(),
                          capture_output=True, text=True, timeout=timeout, **kw)


def with_instrument(instrument: str, args: list[str], timeout: float = 300
                    ) -> subprocess.CompletedProcess:
    """``gpen-video ARGS`` in a real process after ``instrument`` (Python source) ran in it."""
    code = f"{instrument}\nfrom gpen_video.cli import console\nconsole()\n"
    return subprocess.run([sys.executable, "-c", code, *args], env=env(), capture_output=True,
                          text=True, timeout=timeout)


# ------------------------------------------------------------------------------ damaged inputs


def _packets(path: Path) -> list[tuple[int, int, bool]]:
    with av.open(str(path)) as c:
        return [(p.pos, p.size, p.is_keyframe) for p in c.demux(video=0) if p.dts is not None]


def damaged_input(tmp_path: Path, kind: str, packet: int = 20) -> Path:
    """One of the three damaged inputs a farm meets:

    ``truncated``: a faststart MP4 (index first) cut at 60 % of its bytes;
    ``frame``: an H.264 P/B packet (#``packet``) overwritten with noise past its first bytes;
    ``length``: the 4-byte NAL length field at the start of packet #``packet`` made huge.
    """
    src = tmp_path / f"good-{kind}.mp4"
    options = {"movflags": "faststart"} if kind == "truncated" else {}
    make_video(src, VideoSpec(n=36, width=128, height=96, noise=0.08,
                              audio=[AudioSpec(seconds=1.5)]), None)
    if options:
        fast = tmp_path / f"fast-{kind}.mp4"
        with av.open(str(src)) as i, av.open(str(fast), "w", options=options) as o:
            streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
            for p in i.demux():
                if p.dts is not None:
                    p.stream = streams[p.stream.index]
                    o.mux(p)
        src = fast
    data = bytearray(src.read_bytes())
    if kind == "truncated":
        assert data.find(b"moov") < data.find(b"mdat")
        data = data[: len(data) * 6 // 10]
    else:
        pos, size, key = _packets(src)[packet]
        assert not key and size > 200
        if kind == "frame":
            data[pos + 6: pos + size] = np.random.default_rng(7).integers(
                0, 256, size - 6, np.uint8).tobytes()
        elif kind == "length":
            data[pos: pos + 4] = (0x7FFFFFF0).to_bytes(4, "big")
        else:
            raise ValueError(kind)
    bad = tmp_path / f"bad-{kind}.mp4"
    bad.write_bytes(bytes(data))
    return bad


# ------------------------------------------------------------------------------ instruments

# The analyse thread enters ONNX Runtime on its first detector call and never comes back: a
# chain of 2000×2000 MatMuls, run again and again (seconds per call). Every call of the
# detector's network goes through it — ``forward``, which tracked detection's windows and scans
# use, and ``detect`` (full-frame mode) — so the run never gets past its first frames: a thread
# the pipeline cannot join, in C++ code (what made interpreter teardown abort with exit 134),
# and a run that is still alive whenever a test looks (overriding ``detect`` alone once left
# tracked detection at full speed, and a "live" run finished and exited 2 under load).
SLOW_ONNX_DETECTOR = """
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper
import gpen_video.faces as faces
n, nodes, prev = 2000, [], "x"
for i in range(8):
    nodes.append(helper.make_node("MatMul", [prev, "w"], [f"y{i}"])); prev = f"y{i}"
graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info(
    "x", TensorProto.FLOAT, [n, n])], [helper.make_tensor_value_info(prev, TensorProto.FLOAT,
    [n, n])], [helper.make_tensor("w", TensorProto.FLOAT, [n, n],
    np.eye(n, dtype=np.float32).ravel())])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
def stuck(*_args):
    while True:
        session.run(None, {"x": np.ones((n, n), np.float32)})
class _StuckForward:
    def __init__(self, real):
        self.name = getattr(real, "name", "stuck")
    def __call__(self, batch):
        stuck()
class SlowDetector(faces.FaceDetector):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.forward = _StuckForward(self.forward)
    def detect(self, frames):
        stuck()
faces.FaceDetector = SlowDetector
"""

# Every encoded frame's write fails as on a full disk.
FULL_DISK_SINK = """
import errno
from gpen_video.media import sink
def write(self, frame, image=None):
    raise OSError(errno.ENOSPC, "No space left on device")
sink.VideoSink.write = write
"""
