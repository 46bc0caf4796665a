"""The device lane on a real GPU (marked ``gpu``): pinned transfers, streams ordered by events,
device time per stage, and the pipeline's restore/composite path within its sync budget with
torch's own sync detector switched on."""

from __future__ import annotations

import dataclasses
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


def test_pipeline_on_cuda_keeps_the_sync_budget(testdata, tmp_path):
    from gpen_video import pipeline
    from gpen_video.options import BlendOptions, DetectOptions
    from tests.pipeline_helpers import run_options, save_small_gpen

    model = save_small_gpen(tmp_path / "gpen128.pth")
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    options = run_options(testdata, testdata / "videos" / "liveportrait_d11.mp4",
                          tmp_path / "out.mov", model=model, codec="png", frames=(0, 11),
                          temporal="off", batch=4,
                          detect=DetectOptions(network="mobile0.25", weights=weights,
                                               device="cpu", batch=4))
    options = dataclasses.replace(
        options, restore=dataclasses.replace(options.restore, device="cuda", precision="fp32"),
        blend=BlendOptions(geometry="torch"))
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = pipeline.run(options)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert summary.frames == 12 and summary.host_syncs == {"paste": {"download": 12},
                                                          "report": {"synchronize": 1}}
    assert summary.syncs_per_frame == pytest.approx(1.0)
    assert summary.device_busy is not None and summary.device_seconds.get("restore", 0) > 0
    stray = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(stray) <= summary.frames + 1, stray[:5]  # torch's detector: the counted ones
