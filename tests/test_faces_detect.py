"""Face detection with the real RetinaFace MobileNet-0.25 weights from ``testdata/weights``."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from gpen_video.errors import WeightsError
from gpen_video.faces.detect import FaceDetector, find_detector_weights
from gpen_video.models.weights import sha256_of
from gpen_video.options import DetectOptions

MOBILE_SHA256 = "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220"

# testdata/SOURCES.md: faces counted by eye, cross-checked with RetinaFace mobile0.25 at 0.9
EXPECTED_FACES = {
    "gpen_Solvay_conference_1927.png": 29,
    "gpen_val_lq_ffhq_00000.png": 1,
    "gpen_val_hq_ffhq_00000.png": 1,
    "gpen_val_lq_ffhq_00001.png": 1,
    "gpen_val_hq_ffhq_00001.png": 1,
    "gpen_ffhq-10_00004.png": 1,
    "codeformer_cropped_0143.png": 1,
    "codeformer_cropped_0934.png": 1,
    "codeformer_whole_00.jpg": 4,
    "codeformer_whole_03.jpg": 1,  # plus a second person at the edge, face turned away
    "codeformer_whole_04.jpg": 1,
    "gfpgan_cropped_Adele_crop.png": 1,
    "gfpgan_whole_Blake_Lively.jpg": 2,
}
ALIGNED_1024 = [name for name in EXPECTED_FACES
                if name.startswith("gpen_") and "Solvay" not in name]


def read_rgb(path: Path, keep_alpha: bool = False) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if keep_alpha else cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def weights(testdata: Path) -> Path:
    path = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    assert sha256_of(path) == MOBILE_SHA256, "not the facexlib release file (see SOURCES.md)"
    return path


@pytest.fixture(scope="module")
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2 cores here are shared; 2 threads contend badly
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def detector(weights: Path, one_thread) -> FaceDetector:
    """The product's defaults, with the MobileNet network and its local weights."""
    return FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu"))


@pytest.fixture(scope="module")
def full_size(weights: Path, one_thread) -> FaceDetector:
    """No downscaling, no fallback, no refinement: the network as SOURCES.md counted."""
    return FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu",
                                      max_side=0, fill_fallback=False, refine=0))


def test_solvay_has_29_faces_at_full_resolution(testdata: Path, weights: Path, one_thread
                                                ) -> None:
    rgba = read_rgb(testdata / "images" / "gpen_Solvay_conference_1927.png", keep_alpha=True)
    assert rgba.shape == (568, 1328, 4)
    detector = FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu",
                                          max_side=0))
    faces = detector.detect_one(rgba)  # RGBA: the alpha channel is dropped
    assert len(faces) == 29
    assert all(f.score > 0.9 for f in faces)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


@pytest.mark.parametrize("name", [n for n in EXPECTED_FACES if "Solvay" not in n])
def test_expected_face_counts_with_product_defaults(testdata: Path, detector: FaceDetector,
                                                   name: str) -> None:
    faces = detector.detect_one(read_rgb(testdata / "images" / name))
    assert len(faces) == EXPECTED_FACES[name]


def test_landmarks_inside_boxes_and_left_right_order(testdata: Path, detector: FaceDetector,
                                                     full_size: FaceDetector) -> None:
    checked = 0
    for name in EXPECTED_FACES:
        image = read_rgb(testdata / "images" / name)
        for found in (full_size.detect_one(image), detector.detect_one(image)):
            for face in found:
                x0, y0, x1, y1 = face.box
                lm = face.landmarks
                assert np.all((lm[:, 0] >= x0) & (lm[:, 0] <= x1)), name
                assert np.all((lm[:, 1] >= y0) & (lm[:, 1] <= y1)), name
                # index 0 is the eye on the image's left; mouth corners likewise
                assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0], name
                # eyes above the nose, nose above the mouth (upright faces)
                assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1]), name
                checked += 1
    assert checked >= sum(EXPECTED_FACES.values())


def test_aligned_1024_inputs(testdata: Path, weights: Path, full_size: FaceDetector) -> None:
    """SOURCES.md: a face filling a 1024² frame can be missed at full size; at 256 px inside a
    128 px border it is found exactly once with score ≥ 0.998. The product looks again that way
    at frames where nothing was found (``fill_fallback``)."""
    images = {name: read_rgb(testdata / "images" / name) for name in ALIGNED_1024}
    fallback_only = [full_size._prepare_fallback(image) for image in images.values()]
    for name, found in zip(images, full_size._detect_prepared(fallback_only)):
        assert len(found) == 1, name
        assert found[0].score >= 0.998, name
        # mapped back to the 1024² frame: the face is where the FFHQ template puts it
        np.testing.assert_allclose(found[0].landmarks.mean(axis=0), [512, 616], atol=40)
    # at full size, without the second look, RetinaFace misses the LQ baby face
    assert full_size.detect_one(images["gpen_val_lq_ffhq_00000.png"]) == []
    with_fallback = FaceDetector(DetectOptions(network="mobile0.25", weights=weights,
                                               device="cpu", max_side=0, refine=0))
    assert len(with_fallback.detect_one(images["gpen_val_lq_ffhq_00000.png"])) == 1


def test_batched_equals_one_by_one_and_uint16_equals_uint8(testdata: Path,
                                                            detector: FaceDetector) -> None:
    image = read_rgb(testdata / "images" / "codeformer_whole_00.jpg")
    frames = [image, np.ascontiguousarray(image[:, ::-1]), image]
    batched = detector.detect(frames)
    for frame, found in zip(frames, batched):
        single = detector.detect_one(frame)
        assert len(single) == len(found) == 4
        for a, b in zip(single, found):
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)
    deep = detector.detect_one(image.astype(np.uint16) * 257)
    for a, b in zip(detector.detect_one(image), deep):
        # the first pass sees identical 8-bit pixels; the refinement crops are warped at 16 bits
        np.testing.assert_allclose(a.box, b.box, atol=1e-6)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)


def test_matches_facexlib_batched_detect_faces(testdata: Path, full_size: FaceDetector) -> None:
    """Our decode path against facexlib's own ``batched_detect_faces`` (numpy 2 here)."""
    import torch

    image = read_rgb(testdata / "images" / "gfpgan_whole_Blake_Lively.jpg")
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    ours = full_size.detect([image, image])
    with torch.no_grad():  # facexlib calls .numpy() on its outputs: only works without grad
        boxes, landmarks = full_size.model.batched_detect_faces(
            torch.from_numpy(np.stack([bgr, bgr]).astype(np.float32)), conf_threshold=0.9,
            nms_threshold=0.4, use_origin_size=True)
    for found, ref_boxes, ref_points in zip(ours, boxes, landmarks):
        assert len(found) == len(ref_boxes) == 2
        order = np.argsort(-ref_boxes[:, 4])
        for face, k in zip(found, order):
            np.testing.assert_allclose(face.box, ref_boxes[k, :4], atol=1e-3)
            assert face.score == pytest.approx(float(ref_boxes[k, 4]), abs=1e-5)
            np.testing.assert_allclose(face.landmarks, ref_points[k].reshape(5, 2), atol=1e-3)


def test_downscaled_detection_maps_back_to_full_frame(testdata: Path, weights: Path,
                                                      full_size: FaceDetector) -> None:
    image = read_rgb(testdata / "images" / "gfpgan_whole_Blake_Lively.jpg")  # 700×464
    big = cv2.resize(image, (1400, 928), interpolation=cv2.INTER_CUBIC)
    small = FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu",
                                       max_side=700, fill_fallback=False, refine=0))
    on_small = sorted(small.detect_one(big), key=lambda f: f.box[0])
    reference = sorted(full_size.detect_one(image), key=lambda f: f.box[0])
    for a, b in zip(on_small, reference):
        # same pixels seen; coordinates in the 2× frame: x_big = 2·x + 0.5
        np.testing.assert_allclose(a.landmarks, 2 * b.landmarks + 0.5, atol=1.0)


def test_refinement_keeps_faces_and_counts(testdata: Path, detector: FaceDetector,
                                           full_size: FaceDetector) -> None:
    image = read_rgb(testdata / "images" / "codeformer_whole_00.jpg")
    plain = full_size.detect_one(image)
    refined = full_size.refine([image], [plain])[0]
    assert len(refined) == len(plain) == 4
    for a, b in zip(plain, refined):
        assert a.score == b.score
        np.testing.assert_array_equal(a.box, b.box)
        # refined landmarks move by a fraction of the inter-ocular distance, not to another face
        assert np.abs(a.landmarks - b.landmarks).max() < 0.35 * a.inter_ocular


def test_min_face_drops_small_faces(testdata: Path, weights: Path, one_thread) -> None:
    image = read_rgb(testdata / "images" / "codeformer_whole_00.jpg")
    options = DetectOptions(network="mobile0.25", weights=weights, device="cpu", refine=0)
    assert len(FaceDetector(options).detect_one(image)) == 4
    big = FaceDetector(DetectOptions(**{**options.__dict__, "min_face": 10_000}))
    assert big.detect_one(image) == []


# -- weights errors ----------------------------------------------------------------------------

def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_no_weights_is_one_clear_line(tmp_path: Path) -> None:
    options = DetectOptions(network="mobile0.25", cache_dir=tmp_path)
    with pytest.raises(WeightsError) as exc:
        FaceDetector(options)
    message = _one_line(exc)
    assert "detection_mobilenet0.25_Final.pth" in message
    assert str(tmp_path) in message
    assert "--detector-weights PATH" in message
    with pytest.raises(WeightsError) as exc:
        find_detector_weights(DetectOptions(network="resnet50", cache_dir=tmp_path))
    message = _one_line(exc)
    assert "detection_Resnet50_Final.pth" in message and "--detector-weights PATH" in message


def test_missing_explicit_weights_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "detector.pth"
    with pytest.raises(WeightsError) as exc:
        FaceDetector(DetectOptions(network="mobile0.25", weights=missing))
    message = _one_line(exc)
    assert str(missing) in message and "--detector-weights" in message
    assert "detection_mobilenet0.25_Final.pth" in message


def test_wrong_checksum_is_refused(tmp_path: Path, weights: Path) -> None:
    copy = tmp_path / "detection_mobilenet0.25_Final.pth"
    shutil.copyfile(weights, copy)
    with open(copy, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(WeightsError) as exc:
        FaceDetector(DetectOptions(network="mobile0.25", weights=copy))
    assert "sha256" in _one_line(exc)


def test_cached_weights_are_found_and_checked(tmp_path: Path, weights: Path) -> None:
    shutil.copyfile(weights, tmp_path / "detection_mobilenet0.25_Final.pth")
    options = DetectOptions(network="mobile0.25", cache_dir=tmp_path)
    assert find_detector_weights(options) == tmp_path / "detection_mobilenet0.25_Final.pth"


def test_weights_of_the_other_network_are_refused(weights: Path, one_thread) -> None:
    with pytest.raises(WeightsError) as exc:
        FaceDetector(DetectOptions(network="resnet50", weights=weights, device="cpu"))
    assert "does not fit RetinaFace resnet50" in _one_line(exc)


def test_onnxruntime_and_torch_runtimes_find_the_same_faces(testdata: Path, weights: Path,
                                                            one_thread) -> None:
    """The CPU default (onnxruntime, the network exported in memory) against torch: the same
    faces, scores and landmarks to float32 summation-order differences."""
    image = read_rgb(testdata / "images" / "codeformer_whole_00.jpg")
    found = {}
    for runtime in ("onnxruntime", "torch"):
        detector = FaceDetector(DetectOptions(network="mobile0.25", weights=weights,
                                              device="cpu", runtime=runtime))
        assert detector.forward.name == runtime
        found[runtime] = detector.detect_one(image)
    assert len(found["onnxruntime"]) == len(found["torch"]) >= 2
    for a, b in zip(found["onnxruntime"], found["torch"]):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
        np.testing.assert_allclose(a.box, b.box, atol=1e-2)


def test_detector_runtime_choices() -> None:
    import torch

    from gpen_video.errors import UsageError
    from gpen_video.faces.network import TorchNetwork, choose_network

    model = object()
    assert isinstance(choose_network(model, torch.device("cuda", 0), "auto"), TorchNetwork)
    with pytest.raises(UsageError, match="CPU"):
        choose_network(model, torch.device("cuda", 0), "onnxruntime")
    with pytest.raises(UsageError, match="auto, torch, onnxruntime"):
        choose_network(model, torch.device("cpu"), "tensorflow")
