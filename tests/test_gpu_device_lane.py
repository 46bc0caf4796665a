"""The device lane on a real GPU (marked ``gpu``): pinned transfers, streams ordered by events,
device time per stage, and the pipeline's restore/composite path within its sync budget with
torch's own sync detector switched on."""

from __future__ import annotations

import dataclasses
import threading
import warnings

import numpy as np
import pytest
import torch

from gpen_video.device import DeviceLane

pytestmark = pytest.mark.gpu


def test_upload_compose_on_another_stream_and_download():
    lane = DeviceLane("cuda")
    image = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    with lane.work("align"):
        frame = lane.upload(image, "align")
        frame.add_(1)  # on the restore stream
    ready = lane.mark("align")
    lane.receive([ready], [frame], "paste")
    with lane.work("paste"):
        frame.sub_(1)  # on the compose stream, after the restore stream's work
    out = lane.download(frame[0], "paste")
    assert np.array_equal(out, image)
    assert lane.syncs.by_stage() == {"paste": {"download": 1}}
    seconds, busy = lane.device_times()
    assert set(seconds) == {"align", "paste"} and 0.0 < busy <= 1.0


def _run_with_torch_sync_detector(options):
    """``pipeline.run(options)`` with torch's sync debug mode on; returns the summary and, per
    thread name, the synchronizing operations torch reported from that thread. Loading (the
    model's parameters copied to the GPU one by one, the graph capture) happens in the calling
    thread before the stage threads start; the stages' own syncs are those of ``gpen-*``."""
    from gpen_video import pipeline

    seen: dict[str, int] = {}

    def note(message, *args, **kwargs):
        if "synchroniz" in str(message).lower():
            name = threading.current_thread().name
            seen[name] = seen.get(name, 0) + 1

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = note
            summary = pipeline.run(options)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return summary, seen


def _options(testdata, tmp_path, detector_device: str):
    from gpen_video.options import BlendOptions, DetectOptions
    from tests.pipeline_helpers import run_options, save_small_gpen

    model = save_small_gpen(tmp_path / "gpen128.pth")
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    options = run_options(testdata, testdata / "videos" / "liveportrait_d11.mp4",
                          tmp_path / f"out_{detector_device}.mov", model=model, codec="png",
                          frames=(0, 11), temporal="residual", batch=4,
                          detect=DetectOptions(network="mobile0.25", weights=weights,
                                               device=detector_device, batch=4))
    return dataclasses.replace(
        options, restore=dataclasses.replace(options.restore, device="cuda", precision="fp32"),
        blend=BlendOptions(geometry="torch"))


def test_pipeline_on_cuda_keeps_the_sync_budget(testdata, tmp_path):
    """Restore and compose on CUDA (detector on the CPU): the lane counts one download per
    finished frame, and torch's own detector sees no synchronizing call in the stage threads
    (the lane's download waits on an event, which torch does not report; everything else is
    queued). Syncs torch reports from the main thread are the load's."""
    summary, seen = _run_with_torch_sync_detector(_options(testdata, tmp_path, "cpu"))
    assert summary.frames == 12 and summary.faces == 12
    assert summary.host_syncs["paste"] == {"download": 12}
    assert summary.host_syncs["report"] == {"synchronize": 1}
    assert summary.device_busy is not None and summary.device_seconds.get("restore", 0) > 0
    in_stages = {name: n for name, n in seen.items() if name.startswith("gpen-")}
    assert in_stages == {}, (in_stages, seen)


def test_detection_on_cuda_syncs_once_per_round(testdata, tmp_path):
    """The detector on the same GPU shares the run's lane: its rounds are counted downloads
    (one per round; a second round only in a batch where a scan found a new face), and torch
    reports no other sync from any stage thread."""
    summary, seen = _run_with_torch_sync_detector(_options(testdata, tmp_path, "cuda"))
    assert summary.frames == 12 and summary.faces == 12
    rounds = summary.host_syncs["detect"]["download"]
    batches = 3  # 12 frames, detection batch 4
    assert batches <= rounds <= 2 * batches
    assert summary.device_seconds.get("detect", 0) > 0  # its work ran on the lane's stream
    in_stages = {name: n for name, n in seen.items() if name.startswith("gpen-")}
    assert in_stages == {}, (in_stages, seen)
