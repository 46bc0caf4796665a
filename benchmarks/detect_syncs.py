"""Host syncs of one tracked-detection round on CUDA (needs a CUDA GPU).

    PYTHONPATH=. python benchmarks/detect_syncs.py [TESTDATA]

Runs :class:`gpen_video.faces.window_detect.WindowDetector` on a batch of 4 frames of the Solvay
photograph placed in 1080p frames: windows for all of its faces on every frame (3 passes each)
and a full scan on the first frame — and counts the synchronising CUDA operations that
``torch.cuda.set_sync_debug_mode("warn")`` reports during the round, with the weights' real
detector. Prints one JSON line. (The round should report exactly one: the copy back.)
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TESTDATA = REPO.parent / "shared" / "testdata"


def main() -> int:
    import cv2
    import numpy as np
    import torch

    from gpen_video.faces.detect import FaceDetector
    from gpen_video.faces.scan_plan import plan_scan
    from gpen_video.faces.window_detect import ScanJob, WindowDetector, WindowJob
    from gpen_video.options import DetectOptions

    testdata = Path(sys.argv[1]) if len(sys.argv) > 1 else TESTDATA
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA GPU"}))
        return 2
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    image = cv2.cvtColor(cv2.imread(str(testdata / "images" / "gpen_Solvay_conference_1927.png")),
                         cv2.COLOR_BGR2RGB)
    frames = []
    for i in range(4):
        frame = np.full((1080, 1920, 3), 90, dtype=np.uint8)
        frame[200 + i:200 + i + image.shape[0], 300:300 + image.shape[1]] = image
        frames.append(frame)
    detector = FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cuda",
                                          max_side=0, refine=0))
    faces = detector.detect_one(frames[0])
    windows = WindowDetector(detector, 288, (288, 192, 192), first_gate=2.0)
    jobs = [WindowJob(i, f.landmarks) for i in range(4) for f in faces]
    scans = [ScanJob(0, part) for part in plan_scan(1920, 1080, 24)]
    windows.run(frames, jobs, scans)  # warm-up (priors, cuDNN plans)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = windows.run(frames, jobs, scans)
    torch.cuda.set_sync_debug_mode(0)
    syncs = [str(w.message).splitlines()[0] for w in caught
             if "synchroniz" in str(w.message).lower()]
    print(json.dumps({"device": torch.cuda.get_device_name(), "faces": len(faces),
                      "windows": len(jobs), "scan_parts": len(scans),
                      "found": sum(r is not None for r in result.windows),
                      "scan_faces": sum(len(s) for s in result.scans),
                      "syncs": len(syncs), "sync_messages": syncs[:10]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
