"""Settings for every stage, as frozen dataclasses.

There are no globals: the CLI (or a library caller) builds one :class:`RunOptions` and passes the
parts down; each stage receives only its own dataclass. Defaults here are the product's defaults.
Each stage owns its dataclass; add fields there, with a comment saying what they mean.

A field with a fixed set of values has its tuple of names here (``PRECISIONS``, ``BACKEND_NAMES``,
…): the CLI's ``choices=`` and the library's checks (:func:`check_choice`) both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from gpen_video.errors import UsageError

# the fixed choices of the fields below (argparse choices and library checks use these)
BACKEND_NAMES = ("auto", "torch", "onnxruntime", "tensorrt", "identity")  # RestoreOptions.backend
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # RestoreOptions.precision
COMPILE_MODES = ("auto", "on", "off")  # RestoreOptions.compile (gpen_video.engine.compiled)
TACTIC_MODES = ("auto", "timed", "plain")  # RestoreOptions.tactics (gpen_video.engine.tactics)
ENGINE_PRECISIONS = ("fp32", "fp16", "bf16")  # a built network's precision (auto resolved)
DETECTORS = ("resnet50", "mobile0.25")  # DetectOptions.network
DETECTOR_CHOICES = ("auto", *DETECTORS)  # --detector: auto = the network the weights file holds
DETECT_MODES = ("tracked", "full")  # DetectOptions.mode (gpen_video.faces.analyse)
DETECT_RUNTIMES = ("auto", "torch", "onnxruntime")  # DetectOptions.runtime (faces.network)
SMOOTH_METHODS = ("rts", "kalman", "none")  # SmoothOptions.method
GEOMETRIES = ("auto", "cpu", "torch")  # BlendOptions.geometry
TEMPORAL_MODES = ("residual", "off")  # TemporalOptions.mode (gpen_video.compose.temporal)
FACE_SELECTIONS = ("all", "largest")  # RunOptions.faces
ON_DAMAGE = ("conceal", "fail")  # RunOptions.on_damage
PROGRESS_MODES = ("bar", "plain", "json", "openjd", "none")  # RunOptions.progress
SEGMENT_MODES = ("auto", "copy", "lossless", "gop")  # FarmOptions.segments
BENCH_MODES = ("both", "overlap", "serial")  # BenchOptions.mode
OUTPUT_CODECS = ("h264", "hevc", "prores", "dnxhr", "ffv1", "png", "tiff", "exr", "dpx", "vp9",
                 "av1")  # EncodeOptions.codec (gpen_video.media.codecs)


def check_choice(flag: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``.

    Raises:
        UsageError: it is not (the message names ``flag`` and lists the choices).
    """
    if value not in choices:
        raise UsageError(f"{flag} {value!r}: choose one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class ModelOptions:
    """Which GPEN network and where its weights come from."""

    name: str = "GPEN-BFR-512"  # a registry name (gpen_video.models.weights) or a .pth path
    checkpoint_path: Path | None = None  # explicit weights file; no download when given
    cache_dir: Path | None = None  # where downloads go; default $GPEN_VIDEO_HOME or user cache
    download: bool = True  # allow downloading registry weights that are not cached yet
    random_weights: bool = False  # real architecture, random weights: for plumbing and speed only


@dataclass(frozen=True)
class RestoreOptions:
    """How the restorer runs."""

    backend: str = "auto"  # auto | torch | onnxruntime | tensorrt
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 (auto: fp32 on CPU, fp16 on GPU)
    batch: int = 8  # faces per forward pass, gathered across frames
    max_batch: int | None = None  # TensorRT profile max (default max(32, batch)); see engine/
    engine_dir: Path | None = None  # cached ONNX/TensorRT engines; default engine/paths.py
    cuda_graphs: bool = True  # torch on CUDA: replay the forward pass from CUDA graphs
    threads: int | None = None  # CPU threads of onnxruntime (None: its own choice); torch's are
    #                             the process's (torch.set_num_threads)
    compile: str = "auto"  # torch: on = the Inductor-compiled engine (built once, cached in
    #                        engine_dir), off = eager; auto = on when --backend auto chose torch
    tactics: str = "auto"  # torch: timed = each layer's fastest tactic, timed on this device
    #                        and cached; plain = the reference arithmetic; auto = timed when
    #                        compiled or on CUDA, plain for eager on the CPU


@dataclass(frozen=True)
class DetectOptions:
    """Face detection (facexlib RetinaFace)."""

    network: str = "resnet50"  # resnet50 | mobile0.25 | auto (from the weights file)
    weights: Path | None = None  # explicit detector weights; no download when given
    score_threshold: float = 0.9  # official GPEN value
    nms_threshold: float = 0.4  # official GPEN value
    max_side: int = 640  # frames are downscaled so their longer side is at most this
    batch: int = 4  # frames per detector forward
    mode: str = "tracked"  # tracked: windows around tracked faces + periodic full scans; full
    every: int = 0  # tracked: full scan every N frames; full: detect every Nth frame (0: auto,
    #                 ≈ 0.5 s of video when tracked, every frame when full)
    scan_min_iod: float = 24.0  # tracked: the full scan finds faces down to this many px
    #                              between the eyes (its resolution, tiling at high resolution)
    window_size: int = 224  # tracked: side of the window a tracked face is looked for in (the
    #                         face at the refine_size template's scale, centred)
    window_scale: int = 0  # tracked: template size setting the face's scale in that window
    #                        (0: refine_size; smaller: more room for motion, coarser landmarks)
    window_refine_size: int = 192  # tracked: side of the tight windows of the refine passes
    #                                (a multiple of 32, the detector's coarsest stride)
    min_face: int = 0  # ignore faces whose aligned crop spans fewer frame pixels (≈ 4.8× IOD)
    device: str = "auto"
    cache_dir: Path | None = None  # weights cache; default as for ModelOptions.cache_dir
    download: bool = False  # fetch registry weights that are not cached (only when asked)
    fill_fallback: bool = True  # frames with no face: look again at 256 px + 128 px border
    refine: int = 2  # passes re-detecting each face in its upright canonical crop (0: off;
    #                  tracked mode: after the first window pass)
    refine_size: int = 288  # side of that crop (px)
    runtime: str = "auto"  # where the network runs: auto | torch | onnxruntime (the CPU only);
    #                        auto: onnxruntime on the CPU when installed (gpen_video.faces.network)


@dataclass(frozen=True)
class TrackOptions:
    """Multi-face tracking and shot cuts."""

    min_iou: float = 0.3  # assignment gate on box IoU
    landmark_gate: float = 1.0  # assignment gate: mean landmark distance, in inter-ocular units
    confirm_hits: int = 3  # detections before a track is reported …
    confirm_score: float | None = 0.99  # … or one detection this sure (None: off); see track.py
    max_misses: int = 8  # frames without a detection before a track ends (gaps are filled)
    cut_threshold: float = 30.0  # mean abs difference (0-255) of downscaled frames that is a cut


@dataclass(frozen=True)
class SmoothOptions:
    """Temporal smoothing of each track's alignment."""

    method: str = "rts"  # rts | kalman | none
    lag_seconds: float = 0.5  # fixed-lag look-ahead of the RTS smoother


@dataclass(frozen=True)
class BlendOptions:
    """Paste-back of restored faces."""

    strength: float = 1.0  # 0 = original, 1 = fully restored
    track_strength: tuple[tuple[int, float], ...] = ()  # (track id, strength) overriding
    #                                                    `strength` (--strength ID=S)
    color_match: bool = False  # match the restored crop's colour statistics to the source crop
    ramp_frames: int = 5  # alpha ramp at track start and end
    geometry: str = "auto"  # auto | cpu | torch: where crops/paste run (gpen_video.compose)


@dataclass(frozen=True)
class TemporalOptions:
    """Temporal smoothing of restored pixels."""

    mode: str = "residual"  # residual | off (gpen_video.compose.temporal)


@dataclass(frozen=True)
class EncodeOptions:
    """Output encoding. ``None`` means: follow the source."""

    codec: str | None = None  # h264 | hevc | prores | dnxhr | ffv1 | png | tiff | exr | dpx
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    start_number: int | None = None  # image sequences: first file number (None: first frame's)
    tracks: bool = True  # copy the source's audio/subtitle tracks (farm segments: False)
    timecode: str | None = None  # the timecode of the source's frame 0, replacing the file's own
    #                              (None: the file's): conform gives every restored range the
    #                              timecode its frames have in the edit, also for untagged sources
    manifest: bool = False  # farm segments: write SEGMENT.json beside it (gpen_video.farm.manifest)


@dataclass(frozen=True)
class PlateOptions:
    """Image-sequence, still and EXR inputs (gpen_video.media.sequence, .scene_linear)."""

    fps: Fraction | None = None  # sequences: frame rate (None: the files' headers, else 24)
    colorspace: str | None = None  # EXR: the plate's OCIO colour space (None: header / role)
    missing: str = "fail"  # fail | conceal: files missing from a sequence (one error listing
    #                        them, or each replaced by the frame before it)


@dataclass(frozen=True)
class PassOptions:
    """Comp passes written beside the output (gpen_video.media.passes)."""

    matte: Path | None = None  # the paste alpha of every output frame
    patch: Path | None = None  # the restored faces only, premultiplied RGBA
    matte_layer: str | None = None  # EXR output: the matte also as channel NAME.Y in each file

    def paths(self) -> dict[str, Path]:
        """``{"matte": path, "patch": path}`` for the passes asked for."""
        return {k: Path(v) for k, v in (("matte", self.matte), ("patch", self.patch))
                if v is not None}


@dataclass(frozen=True)
class RangeOptions:
    """Which frames to output. Frame numbers are 0-based, in the order frames are shown (the
    decoder's output order), inclusive."""

    start: int | None = None
    end: int | None = None  # clamped to the last frame of the clip
    overlap: int = 0  # frames decoded before ``start`` to warm the tracker, not output
    prime: int = 0  # of those overlap frames, the last ``prime`` are restored too (they warm the
    #                 temporal filter), not output
    tail: int = 0  # frames decoded after ``end`` (the tracker's look-ahead), not output
    start_timecode: str | None = None  # "HH:MM:SS:FF" instead of start (clip's timecode base)
    end_timecode: str | None = None  # "HH:MM:SS:FF" instead of end, inclusive


@dataclass(frozen=True)
class RunOptions:
    """One ``gpen-video INPUT OUTPUT`` job."""

    input: Path
    output: Path
    overwrite: bool = False
    faces: str = "all"  # all | largest
    faces_from: Path | None = None  # a faces file (gpen-video analyse): no detector, its faces
    tracks: tuple[int, ...] | None = None  # restore only these track ids (None: every track)
    skip_tracks: tuple[int, ...] = ()  # never restore these track ids
    on_damage: str = "conceal"  # conceal | fail: a damaged input packet (VideoSource errors=)
    progress: str = "bar"  # bar | plain | json | none
    compare: str = "off"  # off | side-by-side | split: review output (gpen_video.review)
    model: ModelOptions = field(default_factory=ModelOptions)
    restore: RestoreOptions = field(default_factory=RestoreOptions)
    detect: DetectOptions = field(default_factory=DetectOptions)
    track: TrackOptions = field(default_factory=TrackOptions)
    smooth: SmoothOptions = field(default_factory=SmoothOptions)
    blend: BlendOptions = field(default_factory=BlendOptions)
    temporal: TemporalOptions = field(default_factory=TemporalOptions)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    range: RangeOptions = field(default_factory=RangeOptions)
    plate: PlateOptions = field(default_factory=PlateOptions)  # sequences, stills, EXR
    passes: PassOptions = field(default_factory=PassOptions)  # --matte, --patch


@dataclass(frozen=True)
class FarmOptions:
    """``gpen-video farm``: the clip rendered in chunks by Ray workers, then stitched
    (:mod:`gpen_video.farm`). The rendering itself follows the job's :class:`RunOptions`."""

    chunk: int = 300  # frames per chunk (the span and each chunk's overlap: RunOptions.range)
    segments: str = "auto"  # auto | copy | lossless | gop: chunk encoding (gpen_video.farm.plan)
    segment_dir: Path | None = None  # default: beside the output, named after it and the job
    keep_segments: bool = False  # keep the segments after a successful stitch
    ray_address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join a cluster
    workers: int | None = None  # default: one per GPU; without GPUs one per cpus_per_worker CPUs
    cpus_per_worker: float = 1.0  # CPUs Ray reserves for each worker
    retries: int = 2  # further attempts of a chunk whose worker died or failed transiently
    verify: str = "auto"  # the stitch's segment check: auto | none | packets | frames


@dataclass(frozen=True)
class WorkersOptions:
    """``gpen-video IN OUT --workers N``: the job rendered by N pipeline processes on this
    machine over frame-exact chunks, then stitched (:mod:`gpen_video.farm.local`)."""

    count: int | None = 1  # processes; None: auto (gpen_video.farm.local.auto_workers)
    chunks_per_worker: int = 1  # more chunks balance uneven clips, each costs a warm-up
    threads: int | None = None  # torch threads per process; None: OMP_NUM_THREADS or cores ÷ N


@dataclass(frozen=True)
class ConformOptions:
    """``gpen-video conform TIMELINE OUTDIR``: restore the source ranges an edit uses and relink
    the timeline to them (:mod:`gpen_video.conform`). Every range renders with ``run``'s
    settings (its input, output and range are set per range)."""

    run: RunOptions
    timeline: Path
    outdir: Path
    rate: float | None = None  # frame rate of an EDL (it stores none); other formats: unused
    handles: int = 12  # frames rendered on each side of what a clip uses (clamped to the media)
    merge_gap: int = 24  # ranges of one file at most this many frames apart are rendered as one
    search_paths: tuple[Path, ...] = ()  # folders where missing media are looked for by name
    workers: int = 1  # processes rendering the ranges' chunks (gpen_video.farm.local)
    farm: FarmOptions | None = None  # render each range on Ray instead (gpen_video.farm)
    dry_run: bool = False  # plan and report only: render nothing, write nothing


@dataclass(frozen=True)
class BenchOptions:
    """``gpen-video bench``: the job whose pipeline is timed (``run``: its input, output and
    range are replaced per clip) and how it is timed (:mod:`gpen_video.bench`)."""

    run: RunOptions
    clip: Path | None = None  # a given clip; None: synthesise ``scenes`` from ``face``
    face: Path | None = None  # face photo for synthesised clips (default: the checkout's)
    scenes: tuple[str, ...] = ("1080p:1",)  # SIZE:FACES, e.g. 1080p:1, 4k:4, 640x360:2
    frames: int = 24  # frames per timed run, from the clip's first
    repeats: int = 3  # timed runs per mode; medians and min–max are reported
    warmup: int | None = None  # frames of the untimed warm-up run (None: min(frames, 2·batch))
    mode: str = "both"  # overlap (the product's threads) | serial (one stage at a time) | both
    gpus: str = "all"  # all | N: one worker process per GPU; 0 or no GPU: one CPU worker
    workdir: Path | None = None  # clips and outputs (None: a temporary folder, removed after)
    quality: bool = False  # also measure the last timed output (gpen_video.quality)
    faces_from: bool = False  # analyse each clip once (untimed); the timed runs read that
    #                           faces file (--faces-from) instead of detecting
