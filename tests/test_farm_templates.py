"""The farm-manager job templates in scripts/ (issue 8, "Done when" 4 and 3).

Each template is expanded the way its farm manager would expand it — OpenCue's ``#FRAME_START#``
/``#FRAME_END#`` per chunk of the layer's range, Deadline's ``<STARTFRAME>``/``<ENDFRAME>``/
``<QUOTE>`` per task of ``Frames``/``ChunkSize``, OpenJD's ``{{Param.*}}`` and a ``CHUNK[INT]``
``{{Task.Param.Frame}}`` range expression — and the resulting command lines are run on a short
clip. The frame range is planned longer than the clip (0-35 for 30 frames), so every template's
last chunk ends past the clip and must be clamped. Restore commands run in this process through
the real CLI entry point (``gpen_video.cli.main``: a subprocess per chunk would spend most of its
time importing torch); every stitch runs as a real ``gpen-video`` subprocess.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gpen_video.cli import main
from gpen_video.farm.stitch import source_timeline
from tests.farm_helpers import REPO, audio_packets, face_clip, gpen_video
from tests.pipeline_helpers import read_frames

SCRIPTS = REPO / "scripts"
FRAMES, CHUNK = (0, 35), 12  # 3 chunks; the clip has 30 frames (0-29)
# the options every job below ends up giving gpen-video (backend and detector through the
# template's own parameters, the rest after --): the single-run reference gets the same
TEMPLATE_OPTIONS = ("--backend", "identity", "--detector", "mobile0.25", "--device", "cpu",
                    "--progress", "none")


@pytest.fixture(scope="module")
def clip(testdata, tmp_path_factory) -> Path:
    return face_clip(tmp_path_factory.mktemp("templates") / "clip.mov", testdata, n=30)


@pytest.fixture(scope="module")
def single(clip, testdata, tmp_path_factory) -> list:
    """The clip rendered by one process with the templates' options, losslessly: the frames
    every template's job must reproduce (its chunk borders at 12 and 24 cut a face's frames)."""
    out = tmp_path_factory.mktemp("single") / "single.mov"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPEN_VIDEO_HOME", str(_home_with_detector(out.parent / "home", testdata)))
        assert main([str(clip), str(out), "--codec", "png", *TEMPLATE_OPTIONS]) == 0
    return read_frames(out)


def _home_with_detector(home: Path, testdata: Path) -> Path:
    """A gpen-video cache holding the MobileNet detector (as a farm node's would)."""
    (home / "weights").mkdir(parents=True)
    name = "detection_mobilenet0.25_Final.pth"
    (home / "weights" / name).symlink_to(testdata / "weights" / name)
    return home


@pytest.fixture
def weights_home(testdata, tmp_path, monkeypatch) -> Path:
    home = _home_with_detector(tmp_path / "gpen-video-home", testdata)
    monkeypatch.setenv("GPEN_VIDEO_HOME", str(home))
    return home


def _load(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _chunks(first: int, last: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size - 1, last)) for s in range(first, last + 1, size)]


def _run(argv: list[str]) -> None:
    """Run one expanded command line: ``gpen-video …``; a stitch in a real subprocess."""
    assert argv[0] == "gpen-video", argv
    if argv[1] == "stitch":
        proc = gpen_video(*argv[1:])
        assert proc.returncode == 0, proc.stderr
    else:
        assert main(argv[1:]) == 0, argv


def _check(out: Path, segdir: Path, clip: Path, single: list) -> None:
    """Three segments with manifests, the delivery has every source frame and audio packet, and
    the lossless segments hold exactly the single run's pictures (the delivery is H.264, which
    is not bit-exact from run to run here: the segments are what the chunks rendered)."""
    segments = sorted(p.name for p in segdir.iterdir() if not p.name.startswith(".")
                      and not p.name.endswith(".json"))
    assert len(segments) == 3
    assert all((segdir / f"{name}.json").is_file() for name in segments)  # their manifests
    frames = read_frames(out)
    assert [f.pts for f in frames] == list(source_timeline(clip).pts)  # 30 frames, clamped
    assert audio_packets(out) == audio_packets(clip)
    first_frame = lambda name: int(re.search(r"seg-0*(\d+)", name).group(1))  # noqa: E731
    rendered = [f.image for name in sorted(segments, key=first_frame)
                for f in read_frames(segdir / name)]
    assert len(rendered) == len(single) == 30
    differing = [i for i, (a, b) in enumerate(zip(rendered, single)) if not np.array_equal(
        a, b.image)]
    assert differing == [], f"frames unlike a single run's: {differing}"


# ------------------------------------------------------------------ OpenCue (PyOutline)


class _FakeOutline:
    """Just enough of PyOutline to run the submission script without OpenCue."""

    launched: list = []

    class Outline:
        def __init__(self, name, **kw):
            self.name, self.kw, self.layers = name, kw, []

        def add_layer(self, layer):
            self.layers.append(layer)

    class Shell:
        def __init__(self, name, **args):
            self.name, self.args, self.after = name, args, []

        def depend_all(self, other):
            self.after.append(other)

    @classmethod
    def install(cls, monkeypatch):
        outline = types.ModuleType("outline")
        outline.Outline = cls.Outline
        modules = types.ModuleType("outline.modules")
        shell = types.ModuleType("outline.modules.shell")
        shell.Shell = cls.Shell
        cuerun = types.ModuleType("outline.cuerun")
        cuerun.launch = lambda ol, use_pycuerun=True, **kw: cls.launched.append(
            (ol, use_pycuerun))
        outline.modules, outline.cuerun, modules.shell = modules, cuerun, shell
        for name, mod in [("outline", outline), ("outline.modules", modules),
                          ("outline.modules.shell", shell), ("outline.cuerun", cuerun)]:
            monkeypatch.setitem(sys.modules, name, mod)


def _opencue_expand(command: list[str], start: int, end: int) -> list[str]:
    return [a.replace("#FRAME_START#", str(start)).replace("#FRAME_END#", str(end))
            .replace("#IFRAME#", str(start)) for a in command]


def test_opencue_outline(clip, single, tmp_path, weights_home, monkeypatch):
    _FakeOutline.install(monkeypatch)
    _FakeOutline.launched.clear()
    job = _load(SCRIPTS / "opencue" / "gpen_video_job.py")
    out, segdir = tmp_path / "out.mov", tmp_path / "segments"
    segdir.mkdir()
    assert job.main([str(clip), str(out), "--segment-dir", str(segdir),
                     "--frames", f"{FRAMES[0]}-{FRAMES[1]}", "--chunk", str(CHUNK),
                     "--backend", "identity", "--detector", "mobile0.25",
                     "--", "--device", "cpu", "--progress", "none"]) == 0
    (ol, use_pycuerun), = _FakeOutline.launched
    assert use_pycuerun is False  # RQD runs the command itself, with the tokens replaced
    restore, stitch = ol.layers
    assert stitch.after == [restore] and stitch.args["range"] == "1"
    first, last = map(int, restore.args["range"].split("-"))
    for start, end in _chunks(first, last, restore.args["chunk"]):
        _run(_opencue_expand(restore.args["command"], start, end))
    assert (segdir / "seg-24-35.mkv").is_file()  # its #FRAME_END# was past the clip
    _run(stitch.args["command"])
    _check(out, segdir, clip, single)


# ------------------------------------------------------------------ Deadline (CommandLine)


def _deadline_expand(arguments: str, start: int, end: int) -> list[str]:
    def pad(m: re.Match) -> str:
        value = start if m.group(1) == "START" else end
        return str(value).zfill(int(m.group(2))) if m.group(2) else str(value)

    text = re.sub(r"<(START|END)FRAME(?:%(\d+))?>", pad, arguments).replace("<QUOTE>", '"')
    return shlex.split(text)


def _info(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_deadline_commandline_job(clip, single, tmp_path, weights_home):
    submit = _load(SCRIPTS / "deadline" / "submit_deadline.py")
    out, segdir, files = tmp_path / "out.mov", tmp_path / "segments", tmp_path / "job"
    segdir.mkdir()
    args = submit.parse_args([str(clip), str(out), "--segment-dir", str(segdir),
                              "--frames", f"{FRAMES[0]}-{FRAMES[1]}", "--chunk", str(CHUNK),
                              "--backend", "identity",
                              "--detector", "mobile0.25", "--out-dir", str(files),
                              "--", "--device", "cpu", "--progress", "none"])
    assert submit.main([str(clip), str(out), "--segment-dir", str(segdir), "--out-dir",
                        str(files), "--dry-run"]) == 0  # writes the four files, submits nothing
    values = submit.values_from(args, "restore-job-id")
    job_info = _info(submit.fill(SCRIPTS / "deadline" / "restore_job_info.txt", values))
    plugin = _info(submit.fill(SCRIPTS / "deadline" / "restore_plugin_info.txt", values))
    assert job_info["Plugin"] == "CommandLine" and plugin["Executable"] == "gpen-video"
    first, last = map(int, job_info["Frames"].split("-"))
    for start, end in _chunks(first, last, int(job_info["ChunkSize"])):
        _run(["gpen-video", *_deadline_expand(plugin["Arguments"], start, end)])
    assert (segdir / "seg-000024-000035.mkv").is_file()
    stitch_job = _info(submit.fill(SCRIPTS / "deadline" / "stitch_job_info.txt", values))
    stitch = _info(submit.fill(SCRIPTS / "deadline" / "stitch_plugin_info.txt", values))
    assert stitch_job["JobDependencies"] == "restore-job-id" and stitch_job["Frames"] == "0"
    _run(["gpen-video", *_deadline_expand(stitch["Arguments"], 0, 0)])
    _check(out, segdir, clip, single)
    assert sorted(p.name for p in files.iterdir()) == sorted(submit.TEMPLATES)


# ------------------------------------------------------------------ OpenJD / Deadline Cloud


def _openjd_format(text: str, params: dict[str, str], task: str | None = None) -> str:
    def value(m: re.Match) -> str:
        name = m.group(1).strip()
        if name == "Task.Param.Frame":
            assert task is not None
            return task
        assert name.startswith("Param."), name
        return params[name[len("Param."):]]

    return re.sub(r"\{\{\s*([^}]+?)\s*\}\}", value, text)


def test_openjd_job_template(clip, single, tmp_path, weights_home):
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the OpenJD template")
    template = yaml.safe_load((SCRIPTS / "openjd" / "gpen_video_job.yaml").read_text())
    assert template["specificationVersion"] == "jobtemplate-2023-09"
    assert "TASK_CHUNKING" in template["extensions"]
    out, segdir = tmp_path / "out.mov", tmp_path / "segments"
    segdir.mkdir()
    params = {p["name"]: str(p.get("default", "")) for p in template["parameterDefinitions"]}
    params.update(InputFile=str(clip), OutputFile=str(out), SegmentDir=str(segdir),
                  Frames=f"{FRAMES[0]}-{FRAMES[1]}", ChunkSize=str(CHUNK),
                  Backend="identity", Detector="mobile0.25")
    restore, stitch = template["steps"]
    assert stitch["dependencies"] == [{"dependsOn": restore["name"]}]
    frame, = restore["parameterSpace"]["taskParameterDefinitions"]
    assert frame["type"] == "CHUNK[INT]" and frame["chunks"]["rangeConstraint"] == "CONTIGUOUS"
    first, last = map(int, _openjd_format(frame["range"], params).split("-"))
    size = int(_openjd_format(str(frame["chunks"]["defaultTaskCount"]), params))
    action = restore["script"]["actions"]["onRun"]
    for start, end in _chunks(first, last, size):
        task = f"{start}-{end}" if end > start else str(start)  # a contiguous range expression
        argv = [action["command"], *(_openjd_format(a, params, task) for a in action["args"])]
        _run([*argv, "--device", "cpu"])
    assert (segdir / "seg-24-35.mkv").is_file()
    action = stitch["script"]["actions"]["onRun"]
    _run([action["command"], *(_openjd_format(a, params) for a in action["args"])])
    _check(out, segdir, clip, single)
