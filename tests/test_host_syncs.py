"""The sync budget of the restore/composite path, on the CPU.

The pipeline runs with the torch geometry (the GPU path's code, on the CPU device) and a
random-weight GPEN of the real architecture (128 px, narrow: plumbing only) over a real clip. Two
instruments: the counts of :class:`gpen_video.device.DeviceLane` (what ``bench`` reports), and
:class:`tests.sync_probe.StraySyncs`, which catches would-be syncs that bypass the lane in the
restore and compose threads. Budget: ≤ 1 host sync per output frame + 1 per detection
batch; the restore/composite path should need exactly the finished frame's download. Detection
shares the run's lane (same device): its rounds are counted downloads too (the analyse thread is
not probed: its host-side NMS reads CPU tensors that on a GPU run are already on the host; the
GPU test checks that thread with torch's own sync detector).
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from gpen_video import pipeline
from gpen_video.device import HostSyncs
from gpen_video.options import BlendOptions, DetectOptions
from tests.pipeline_helpers import run_options, save_small_gpen
from tests.sync_probe import StraySyncs

FRAMES = (0, 11)  # 12 frames of a one-face clip


def _run(testdata, tmp_path, temporal: str):
    model = save_small_gpen(tmp_path / "gpen128.pth")
    clip = testdata / "videos" / "liveportrait_d11.mp4"
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    detect = DetectOptions(network="mobile0.25", weights=weights, device="cpu", batch=4)
    options = run_options(testdata, clip, tmp_path / f"out_{temporal}.mov", model=model,
                          codec="png", frames=FRAMES, temporal=temporal, batch=4, detect=detect)
    options = dataclasses.replace(options, blend=BlendOptions(geometry="torch"))
    with StraySyncs(("gpen-restore", "gpen-compose")) as probe:
        summary = pipeline.run(options)
    assert probe.counted > 0  # the probe watched the threads that did the work
    return summary, probe.found, math.ceil(summary.frames / detect.batch)


def test_restore_and_composite_sync_once_per_frame(testdata, tmp_path):
    summary, strays, detect_batches = _run(testdata, tmp_path, "off")
    assert summary.frames == 12 and summary.faces == 12
    assert strays == []  # every would-be sync went through the lane
    syncs = dict(summary.host_syncs)
    # detection (same device, same lane): one download per round; a second round only in a
    # batch where a scan found a face no window had (here: the first batch, a new face)
    rounds = syncs.pop("detect")["download"]
    assert detect_batches <= rounds <= detect_batches + 1
    assert syncs == {"paste": {"download": 12}}  # the finished frames, nothing else
    assert summary.syncs_per_frame == pytest.approx(1.0)
    assert summary.as_dict()["host_syncs_per_frame"] == 1.0
    assert summary.detect_syncs_per_frame == pytest.approx(rounds / 12)


def test_residual_temporal_smoothing_stays_on_the_device(testdata, tmp_path):
    """The default temporal smoothing runs where the crops are: no download beyond the
    finished frames, and none that escapes the count."""
    summary, strays, _ = _run(testdata, tmp_path, "residual")
    assert strays == []
    assert {k: v for k, v in summary.host_syncs.items() if k != "detect"} == {
        "paste": {"download": 12}}


def test_host_syncs_counts_by_stage_and_kind():
    syncs = HostSyncs()
    syncs.add("paste", "download")
    syncs.add("paste", "download")
    syncs.add("detect", "item", 3)
    assert syncs.by_stage() == {"detect": {"item": 3}, "paste": {"download": 2}}
    assert syncs.total() == 5 and syncs.total(("paste",)) == 2
    with pytest.raises(ValueError):
        syncs.add("paste", "coffee")


def test_the_probe_sees_syncs_that_bypass_the_lane():
    """The instrument itself: reads of tensor values in a watched thread are found, the same
    reads inside the lane's counted download are not, other threads are ignored."""
    import threading

    import torch

    from gpen_video.device import DeviceLane

    lane = DeviceLane("cpu")
    t = torch.arange(6.0) - 2

    def stage() -> None:
        t.cpu()
        float(t[0])
        t[t < 0] = 0.0
        lane.download(t, "paste")

    with StraySyncs(("gpen-paste",)) as probe:
        for name in ("gpen-paste", "gpen-decode"):
            thread = threading.Thread(target=stage, name=name)
            thread.start()
            thread.join()
    assert [what for _, what, _ in probe.found] == ["cpu", "__float__", "__setitem__"]
    assert lane.syncs.by_stage() == {"paste": {"download": 2}}


def test_cpu_upload_shares_a_frame_view_and_copies_what_it_may_not_share():
    """On the CPU an upload is the frame itself: a region of a frame (a strided view) is not
    copied; a read-only or reversed array is copied into a contiguous tensor."""
    import numpy as np

    from gpen_video.device import DeviceLane

    lane = DeviceLane("cpu")
    frame = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    region = frame[4:12, 5:25]
    shared = lane.upload(region, "detect")[0]
    assert np.shares_memory(shared.numpy(), frame) and np.array_equal(shared.numpy(), region)
    frame.flags.writeable = False
    copied = lane.upload(frame[4:12, 5:25], "detect")[0]
    assert not np.shares_memory(copied.numpy(), frame) and copied.is_contiguous()
    assert np.array_equal(copied.numpy(), region)
    frame.flags.writeable = True
    flipped = lane.upload(frame[:, ::-1], "detect")[0]
    assert np.array_equal(flipped.numpy(), frame[:, ::-1])
