"""Face detection: facexlib RetinaFace (ResNet-50 or MobileNet-0.25), downscaled and batched.

Input frames are numpy ``H×W×3`` **RGB**, ``uint8`` or ``uint16`` (deep sources; converted to
8 bits for detection), upright. ``H×W×4`` (alpha dropped) and ``H×W`` (grey) are accepted too.
Output is, per frame, a list of :class:`~gpen_video.faces.types.Detection` in full-frame pixel
coordinates (pixel centres at integers), best score first.

How a batch is processed:

1. Each frame is downscaled (``cv2.INTER_AREA``) so that its longer side is at most
   ``DetectOptions.max_side`` (never upscaled; ``max_side <= 0`` keeps the original size),
   converted to 8 bits and to BGR (RetinaFace was trained on OpenCV BGR images), and the BGR
   means (104, 117, 123) are subtracted.
2. Frames of the same downscaled size go through the network together, ``DetectOptions.batch``
   at a time. The anchors (priors) are computed once per input size and cached.
3. Boxes and landmarks are decoded with facexlib's own decoders, thresholded at
   ``score_threshold``, reduced by NMS at ``nms_threshold`` (torchvision), and mapped back to the
   full frame: ``x = (x' + 0.5)/s − 0.5`` for a resize by ``s`` (pixel-centre convention, the
   mapping ``cv2.resize`` itself uses).
4. Frames with no face at all get a second look when ``DetectOptions.fill_fallback`` is on: the
   frame is scaled so its longer side is 256 px and surrounded by a 128 px black border. That
   finds faces that fill the frame — already-aligned crops (FFHQ-style 1024² images), extreme
   close-ups — which RetinaFace misses or doubles at full size because its largest anchors are
   512 px (see ``testdata/SOURCES.md``, detector note).

5. Each face is then refined ``DetectOptions.refine`` times (default 2): detected again in an
   upright ``refine_size``² crop aligned by its current landmarks, cut from the full-resolution
   frame (see :meth:`FaceDetector.refine`). In ``benchmarks/face_stability.py`` this cuts the
   per-frame alignment error of RetinaFace MobileNet-0.25 several times (``benchmarks/
   RESULTS.md``, "B1: face alignment stability") — its landmark errors
   depend on the face's scale, angle and position on the anchor grid, are strongly correlated
   from frame to frame (so no temporal smoother can remove them) and become nearly constant when
   the network always sees the face the same way.

Device work goes through a :class:`~gpen_video.device.DeviceLane` (:attr:`FaceDetector.lane`; the
pipeline hands the detector its own lane with :meth:`FaceDetector.use_lane`, so that one count
covers every stage): images go up from pinned buffers on the lane's detect stream, and each
network call's raw output (score, box and landmarks of every prior) comes back in **one** counted
download; thresholding and NMS then run on the host, on the same float32 values, so results do
not depend on the device.

This is the ``--detect full`` path. The default, ``tracked``, uses the same network through
:mod:`gpen_video.faces.window_detect` (windows around tracked faces, tiled scans) under the
schedule of :mod:`gpen_video.faces.analyse`.

Faces whose aligned crop would span fewer than ``DetectOptions.min_face`` frame pixels are
dropped. The model is built from facexlib's ``RetinaFace`` class with a local state dict; facexlib's
own loader (which downloads into site-packages) is never used. Weights come from the registry in
:mod:`gpen_video.models.weights` (``retinaface-resnet50`` / ``retinaface-mobile0.25``): an
explicit path from ``DetectOptions.weights`` wins; otherwise the cache, and a download only when
``DetectOptions.download`` is true. Files with a published sha256 (MobileNet-0.25) are checked,
also when given explicitly: a same-named, same-sized file trained with other anchors exists and
gives wrong boxes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from gpen_video.errors import BackendUnavailable, WeightsError
from gpen_video.faces.align import TEMPLATE_IOD_512, apply_affine, face_size, invert_affine, \
    similarity_to_template, template_points, warp_to_crop
from gpen_video.faces.types import Detection
from gpen_video.options import DETECTORS, DetectOptions, check_choice

_BGR_MEAN = (104.0, 117.0, 123.0)
FALLBACK_SIDE = 256  # fill-the-frame second look: longer side scaled to this …
FALLBACK_BORDER = 128  # … and this much black border on every side


def weights_name(network: str) -> str:
    """The registry name of a RetinaFace network's weights."""
    return f"retinaface-{network}"


def detector_network(options: DetectOptions) -> str | None:
    """The RetinaFace network ``options`` ask for. ``"auto"``: the one the weights file is for
    (known file name or checksum; None when only the file's contents can tell), resnet50
    without a file.

    Raises:
        UsageError: an unknown network name.
    """
    from gpen_video.models.weights import get_spec, sha256_of

    if options.network != "auto":
        return check_choice("--detector", options.network, DETECTORS)
    if options.weights is None:
        return "resnet50"
    path = Path(options.weights).expanduser()
    specs = {net: get_spec(weights_name(net)) for net in DETECTORS}
    for net, spec in specs.items():
        if path.name.lower() == spec.filename.lower():
            return net
    if path.is_file() and path.stat().st_size < (64 << 20):
        digest = sha256_of(path)
        for net, spec in specs.items():
            if spec.sha256 == digest:
                return net
    return None


def find_detector_weights(options: DetectOptions) -> Path:
    """The detector weights file for ``options`` (explicit path, cache, or download).

    Raises:
        UsageError: unknown network name.
        WeightsError: not found (one line naming the file, where it was looked for and the
            offline option ``--detector-weights PATH``), or a checksum mismatch.
        DownloadError: a download was allowed and failed.
    """
    from gpen_video.models.weights import get_spec, resolve_weights, sha256_of

    network = detector_network(options)
    spec = get_spec(weights_name(network or "resnet50"))
    if options.weights is not None:
        path = Path(options.weights).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"detector weights {path} (--detector-weights) do not exist: pass the path of "
                f"{spec.filename}, or drop the option to use the cache (`gpen-video download "
                f"{spec.name}`)")
        if network is not None and spec.sha256 is not None:
            actual = sha256_of(path)
            if actual != spec.sha256:
                raise WeightsError(
                    f"{path} has sha256 {actual[:12]}…, expected {spec.sha256[:12]}… for "
                    f"{spec.filename}: it is another file (same-named RetinaFace weights trained "
                    f"with other anchors exist); get {spec.url}")
        return path
    return resolve_weights(spec.name, None, cache_dir=options.cache_dir,
                           download_missing=options.download)


def _pick_device(name: str):
    import torch

    if name in ("auto", ""):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"detector device {name!r}: no CUDA GPU here; use --device cpu")
    if device.type == "cuda" and device.index is None:  # cuda:N, as the restorer names it
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _network_of_state(state: dict) -> str | None:
    """Which RetinaFace backbone a state dict is for, from its key names."""
    if any(".stage1." in k for k in state):
        return "mobile0.25"
    if any(".layer1." in k for k in state):
        return "resnet50"
    return None


def _read_retinaface_state(weights: Path) -> dict:
    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unpickling failure means a bad file
        # not torch's message: it suggests weights_only=False, which runs the file's code
        raise WeightsError(
            f"cannot read detector weights {weights}: not a plain PyTorch state dict "
            "(truncated, another format, or a pickle with Python objects, which is never "
            "loaded for safety); get the official file with `gpen-video download "
            "retinaface-resnet50` (or retinaface-mobile0.25)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{weights} is not a RetinaFace state dict")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def load_retinaface(network: str | None, weights: Path, device):
    """facexlib's ``RetinaFace`` with the state dict in ``weights`` (``module.`` stripped);
    ``network`` None or ``"auto"``: the backbone the file's keys name.

    Raises:
        WeightsError: the file is not a state dict that fits ``network``.
    """
    from facexlib.detection.retinaface import RetinaFace

    state = _read_retinaface_state(weights)
    if network in (None, "auto"):
        network = _network_of_state(state)
        if network is None:
            raise WeightsError(f"{weights} is not a RetinaFace state dict (neither ResNet-50 "
                               "nor MobileNet keys)")
    with warnings.catch_warnings():  # facexlib builds ResNet-50 with torchvision's old keyword
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = RetinaFace(network_name=network, half=False, phase="test", device=device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        held = _network_of_state(state)
        hint = f"it holds {held} weights: " if held and held != network else ""
        raise WeightsError(
            f"{weights} does not fit RetinaFace {network}: {hint}pass --detector "
            f"{held or 'NAME'}, or leave --detector out to infer it from the file") from None
    model.to(device).eval()
    model.network_name = network
    return model


def to_uint8_rgb(frame: np.ndarray) -> np.ndarray:
    """``H×W×3`` uint8 RGB view/copy of a frame (uint16 scaled, alpha dropped, grey expanded).

    Raises:
        ValueError: not a 2-D/3-D uint8/uint16 image with 1, 3 or 4 channels.
    """
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise ValueError(f"frames must be H×W×3 RGB, got shape {frame.shape}")
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    if frame.dtype == np.uint16:
        frame = cv2.convertScaleAbs(np.ascontiguousarray(frame), alpha=255.0 / 65535.0)
    elif frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 or uint16, got {frame.dtype}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return frame


class FaceDetector:
    """RetinaFace over batches of frames; see the module docstring for the whole procedure.

    ``FaceDetector(DetectOptions(network="mobile0.25", weights=path))``; then
    ``detector.detect(frames)`` → one ``list[Detection]`` per frame.
    """

    def __init__(self, options: DetectOptions = DetectOptions(), *,
                 _random_weights: bool = False) -> None:
        """Load the network. Raises what :func:`find_detector_weights` raises, and
        :class:`~gpen_video.errors.BackendUnavailable` for a CUDA device without CUDA."""
        import torch

        self.options = options
        self.device = _pick_device(options.device)
        if _random_weights:
            from facexlib.detection.retinaface import RetinaFace

            self.network = detector_network(options) or "resnet50"
            self.weights_path = None
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
                self.model = RetinaFace(network_name=self.network, half=False, phase="test",
                                        device=self.device).to(self.device).eval()
        else:
            self.weights_path = find_detector_weights(options)
            self.model = load_retinaface(detector_network(options), self.weights_path,
                                         self.device)
            self.network = self.model.network_name
        from gpen_video.device import DeviceLane
        from gpen_video.faces.network import choose_network

        key = None
        if self.weights_path is not None:
            stat = self.weights_path.stat()
            key = (self.network, str(self.weights_path), stat.st_size, stat.st_mtime_ns)
        # the network's forward: torch, or onnxruntime on the CPU (gpen_video.faces.network)
        self.forward = choose_network(self.model, self.device, options.runtime, key)
        self.lane = DeviceLane(self.device, timing=False)
        self._mean = torch.tensor(_BGR_MEAN, dtype=torch.float32, device=self.device).view(
            1, 3, 1, 1)
        self._priors: dict[tuple[int, int], object] = {}

    def use_lane(self, lane) -> None:
        """Do this detector's device work through ``lane`` (a
        :class:`~gpen_video.device.DeviceLane` on the detector's device): its detect stream, its
        pinned transfers, its count of host syncs.

        Raises:
            ValueError: the lane is on another device.
        """
        if lane.device != self.device:
            raise ValueError(f"the detector runs on {self.device}, the lane is on {lane.device}")
        self.lane = lane

    def to_device(self, array: np.ndarray):
        """A numpy array (uint8, uint16 or float32) on the detector's device, uploaded on the
        detect stream from a pinned buffer (no host sync)."""
        return self.lane.upload(array, "detect")[0]

    @classmethod
    def with_random_weights(cls, options: DetectOptions = DetectOptions()) -> "FaceDetector":
        """The real architecture with random weights: for speed measurements only (it finds
        nothing meaningful). Used where the ResNet-50 weights cannot be downloaded."""
        return cls(options, _random_weights=True)

    # -- preprocessing ------------------------------------------------------------------------

    def _scale_for(self, height: int, width: int) -> float:
        side = self.options.max_side
        if side is None or side <= 0:
            return 1.0
        return min(1.0, side / max(height, width))

    @staticmethod
    def _resize(frame: np.ndarray, scale: float) -> np.ndarray:
        if scale == 1.0:
            return frame
        h, w = frame.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        return cv2.resize(frame, size, interpolation=interp)

    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """Downscaled 8-bit BGR image and its mapping ``(sx, sy, ox, oy)`` back to the frame."""
        h, w = frame.shape[:2]
        scale = self._scale_for(h, w)
        if frame.dtype == np.uint16 and frame.ndim == 3 and frame.shape[2] >= 3:
            small = to_uint8_rgb(self._resize(np.ascontiguousarray(frame[:, :, :3]), scale))
        else:
            small = self._resize(np.ascontiguousarray(to_uint8_rgb(frame)), scale)
        sh, sw = small.shape[:2]
        return small[:, :, ::-1], (sw / w, sh / h, 0.0, 0.0)

    @staticmethod
    def _prepare_fallback(frame: np.ndarray
                          ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        rgb = to_uint8_rgb(frame)
        h, w = rgb.shape[:2]
        scale = FALLBACK_SIDE / max(h, w)
        small = FaceDetector._resize(np.ascontiguousarray(rgb), scale)
        sh, sw = small.shape[:2]
        b = FALLBACK_BORDER
        padded = cv2.copyMakeBorder(small, b, b, b, b, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        return padded[:, :, ::-1], (sw / w, sh / h, float(b), float(b))

    # -- network ------------------------------------------------------------------------------

    def priors(self, height: int, width: int):
        """The network's priors for a ``height×width`` input, in its pixels
        (:class:`~gpen_video.faces.priors.Priors`, on the device; cached per size)."""
        key = (height, width)
        if key not in self._priors:
            from gpen_video.faces.priors import Priors

            self._priors[key] = Priors.for_image(self.model.cfg, height, width, self.to_device)
        return self._priors[key]

    def _run(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Raw detections (boxes N×4, scores N, landmarks N×5×2) in the images' own pixels.

        ``images`` are 8-bit BGR, all the same size. One upload, one forward, one download
        (score, box, landmarks of every prior); thresholds and NMS on the host.
        """
        import torch

        h, w = images[0].shape[:2]
        with self.lane.work("detect"), torch.inference_mode():
            batch = self.to_device(np.stack(images))
            batch = batch.permute(0, 3, 1, 2).float() - self._mean
            loc, conf, landm = self.forward(batch)
            priors = self.priors(h, w)
            packed = torch.cat([conf[:, :, 1:2], priors.boxes(loc),
                                priors.landmarks(landm).flatten(2)], dim=2)
        host = torch.from_numpy(self.lane.download(packed, "detect"))  # N×P×15, float32
        return [self._host_nms(rows) for rows in host]

    def _host_nms(self, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's priors (P×15 host float32: score, box, landmarks) thresholded and
        reduced by NMS, best first."""
        import torchvision

        rows = rows[rows[:, 0] > self.options.score_threshold]
        if rows.shape[0]:
            order = torchvision.ops.nms(rows[:, 1:5], rows[:, 0], self.options.nms_threshold)
            rows = rows[order]
        rows = rows.double().numpy()
        return rows[:, 1:5], rows[:, 0], rows[:, 5:15].reshape(-1, 5, 2)

    # -- public -------------------------------------------------------------------------------

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces in each frame: one list of :class:`Detection` per frame, best score first.

        Frames are ``H×W×3`` RGB uint8/uint16 (see the module docstring); they may differ in
        size (frames of one size are batched together).

        Raises:
            ValueError: a frame is not an image of a supported shape/dtype.
        """
        prepared = [self._prepare(frame) for frame in frames]
        results = self._detect_prepared(prepared)
        if self.options.fill_fallback:
            empty = [i for i, dets in enumerate(results) if not dets]
            if empty:
                again = self._detect_prepared([self._prepare_fallback(frames[i]) for i in empty])
                for i, dets in zip(empty, again):
                    results[i] = dets
        for _ in range(max(0, int(self.options.refine))):
            results = self.refine(frames, results)
        return results

    def refine(self, frames: Sequence[np.ndarray], detections: list[list[Detection]]
               ) -> list[list[Detection]]:
        """One refinement pass: each face's landmarks found again in its canonical crop.

        Each face is warped from the full-resolution frame into an upright
        ``refine_size``² crop aligned to the template by its current landmarks (bilinear,
        border reflected), every crop of the batch goes through the network at once, and the
        face nearest the template is mapped back through the exact inverse warp. The detector
        then always sees a face of the same size and orientation, so its pose-dependent bias
        (which changes with the face's scale against the anchors, its angle and its position on
        the anchor grid) becomes nearly constant, and small faces found on the downscaled frame
        get full-resolution landmarks. A face whose crop yields nothing within half an
        inter-ocular distance of the template keeps its landmarks. Boxes and scores are kept.
        """
        size = int(self.options.refine_size)
        template = template_points(size)
        gate = 0.5 * TEMPLATE_IOD_512 * size / 512.0
        jobs: list[tuple[int, int, np.ndarray]] = []
        crops: list[np.ndarray] = []
        for i, dets in enumerate(detections):
            if not dets:
                continue
            frame = frames[i]
            if frame.ndim == 2:
                frame = frame[:, :, None]
            frame = np.ascontiguousarray(frame[:, :, :3])
            for j, det in enumerate(dets):
                try:
                    matrix = similarity_to_template(det.landmarks, size)
                except ValueError:
                    continue
                crop = to_uint8_rgb(warp_to_crop(frame, matrix, size))
                jobs.append((i, j, matrix))
                crops.append(np.ascontiguousarray(crop[:, :, ::-1]))
        if not jobs:
            return detections
        out = [list(dets) for dets in detections]
        step = max(1, int(self.options.batch)) * 4
        for start in range(0, len(crops), step):
            raw = self._run(crops[start:start + step])
            for (i, j, matrix), (_, _, points) in zip(jobs[start:start + step], raw):
                if not len(points):
                    continue
                dist = np.linalg.norm(points - template[None], axis=2).mean(axis=1)
                best = int(np.argmin(dist))
                if dist[best] > gate:
                    continue
                landmarks = apply_affine(invert_affine(matrix), points[best])
                old = out[i][j]
                out[i][j] = Detection(old.box, old.score, landmarks)
        return out

    def detect_one(self, frame: np.ndarray) -> list[Detection]:
        """Faces in a single frame (see :meth:`detect`)."""
        return self.detect([frame])[0]

    def _detect_prepared(
        self, prepared: list[tuple[np.ndarray, tuple[float, float, float, float]]]
    ) -> list[list[Detection]]:
        results: list[list[Detection]] = [[] for _ in prepared]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (image, _) in enumerate(prepared):
            groups.setdefault(image.shape[:2], []).append(i)
        step = max(1, int(self.options.batch))
        for indices in groups.values():
            for start in range(0, len(indices), step):
                chunk = indices[start:start + step]
                raw = self._run([prepared[i][0] for i in chunk])
                for i, (boxes, scores, points) in zip(chunk, raw):
                    results[i] = self._to_frame(boxes, scores, points, prepared[i][1])
        return results

    def _to_frame(self, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
                  mapping: tuple[float, float, float, float]) -> list[Detection]:
        sx, sy, ox, oy = mapping
        scale = np.array([sx, sy])
        offset = np.array([ox, oy])
        detections = []
        for box, score, pts in zip(boxes, scores, points):
            pts = (pts - offset + 0.5) / scale - 0.5
            corners = (box.reshape(2, 2) - offset + 0.5) / scale - 0.5
            if self.options.min_face > 0:
                try:
                    if face_size(pts) < self.options.min_face:
                        continue
                except ValueError:
                    continue
            detections.append(Detection(corners.reshape(4), float(score), pts))
        return detections
