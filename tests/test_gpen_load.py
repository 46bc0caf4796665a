"""Loading GPEN weights: wrapped checkpoints, bad files (one clear line, exit code 2), registry."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gpen_video.cli import main
from gpen_video.errors import EXIT_USAGE, WeightsError
from gpen_video.models import weights
from gpen_video.models.config import GpenConfig
from gpen_video.models.load import build_gpen, load_gpen

REF_CONFIG = GpenConfig(128, 2, 0.125)


@pytest.fixture(scope="module")
def ref_dir(testdata: Path) -> Path:
    return testdata / "gpen" / "ref128"


@pytest.fixture(scope="module")
def ref_state(ref_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(ref_dir / "state_dict.pt", weights_only=True)


def _check_output(model, ref_dir: Path) -> None:
    x = torch.load(ref_dir / "input.pt", weights_only=True)
    expected = torch.load(ref_dir / "output.pt", weights_only=True)
    with torch.inference_mode():
        assert (model(x).float() - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("wrapper", ["g_ema", "params_ema", "state_dict"])
def test_wrapped_and_dataparallel_checkpoints_load(tmp_path: Path, ref_state: dict,
                                                   ref_dir: Path, wrapper: str) -> None:
    inner = {f"module.{k}": v for k, v in ref_state.items()}
    path = tmp_path / "train.pth"
    torch.save({wrapper: inner, "step": torch.tensor(1000), "d": {"x": torch.zeros(1)}}, path)
    _check_output(load_gpen(path), ref_dir)


def test_half_precision_checkpoint_loads_as_fp32(tmp_path: Path, ref_state: dict) -> None:
    path = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in ref_state.items()}, path)
    model = load_gpen(path)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.config == REF_CONFIG


# --- bad weights: one clear line each ------------------------------------------------------


def _bad_files(tmp: Path, testdata: Path, ref_dir: Path) -> dict[str, tuple[Path, str]]:
    """name → (file, phrase the message must contain)."""
    text = tmp / "GPEN-BFR-512.pth"
    text.write_text("<html><body>404 Not Found</body></html>\n")
    blob = (ref_dir / "state_dict.pt").read_bytes()
    truncated = tmp / "truncated.pth"
    truncated.write_bytes(blob[: len(blob) // 3])
    other = tmp / "other_size.pth"
    torch.save(build_gpen(GpenConfig(64, 2, 0.125), seed=0).state_dict(), other)
    objects = tmp / "objects.pth"
    torch.save({"optimizer": torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)},
               objects)
    return {
        "text": (text, "is a text file, not a PyTorch checkpoint"),
        "truncated": (truncated, "is truncated or damaged"),
        "other_size": (other, "does not fit"),
        "detector": (testdata / "weights" / "detection_mobilenet0.25_Final.pth",
                     "this is a RetinaFace detector file, not GPEN"),
        "python_objects": (objects, "holds Python objects"),
    }


BAD = ["text", "truncated", "other_size", "detector", "python_objects"]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, testdata: Path, ref_dir: Path) -> dict[str, tuple[Path, str]]:
    return _bad_files(tmp_path_factory.mktemp("bad"), testdata, ref_dir)


@pytest.mark.parametrize("case", BAD)
def test_bad_weights_raise_one_clear_line(bad_files: dict, case: str) -> None:
    path, phrase = bad_files[case]
    expect = REF_CONFIG if case == "other_size" else None
    with pytest.raises(WeightsError) as info:
        load_gpen(path, expect=expect)
    message = str(info.value)
    assert "\n" not in message
    assert phrase.lower() in message.lower(), message
    assert str(path) in message


def test_other_size_message_names_keys_and_shapes(bad_files: dict) -> None:
    path, _ = bad_files["other_size"]
    with pytest.raises(WeightsError) as info:
        load_gpen(path, expect=REF_CONFIG)
    message = str(info.value)
    assert "the file looks like size 64" in message
    assert "missing (generator.convs.8.conv.weight" in message  # 128 has two more layers
    assert "ecd0.0.0.weight is 64×3×1×1 in the file, 32×3×1×1 in the model" in message


def test_empty_and_nan_files(tmp_path: Path, ref_state: dict) -> None:
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="is empty"):
        load_gpen(empty)
    broken = dict(ref_state)
    broken["final_linear.0.bias"] = broken["final_linear.0.bias"].clone()
    broken["final_linear.0.bias"][3] = float("nan")
    nan = tmp_path / "nan.pth"
    torch.save(broken, nan)
    with pytest.raises(WeightsError, match="final_linear.0.bias contains NaN"):
        load_gpen(nan)


@pytest.mark.parametrize("case", BAD)
def test_bad_weights_through_the_cli_exit_2_without_traceback(
    bad_files: dict, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, phrase = bad_files[case]
    out = tmp_path / "gpen.onnx"
    argv = ["export", "--model", str(path), str(out)]
    if case == "other_size":
        argv += ["--size", "128"]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert captured.err.count("\n") == 1 and captured.err.startswith("gpen-video: error: ")
    assert phrase.lower() in captured.err.lower()
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()


def test_detector_file_in_a_real_process(bad_files: dict, tmp_path: Path) -> None:
    path, phrase = bad_files["detector"]
    proc = subprocess.run(
        [sys.executable, "-m", "gpen_video", "export", "--model", str(path),
         str(tmp_path / "x.onnx")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.count("\n") == 1 and phrase in proc.stderr
    assert "Traceback" not in proc.stderr


# --- the registry: names, cache, recorded checksums ------------------------------------------


@pytest.fixture()
def small_registry(monkeypatch: pytest.MonkeyPatch) -> weights.WeightsSpec:
    """GPEN-BFR-256 re-pointed at the ref128 architecture, so a real file can sit in the cache."""
    spec = dataclasses.replace(weights.REGISTRY["GPEN-BFR-256"], gpen=REF_CONFIG,
                               url="http://gpen-video.invalid/GPEN-BFR-256.pth")
    monkeypatch.setitem(weights.REGISTRY, "GPEN-BFR-256", spec)
    return spec


def _cache_with_record(cache: Path, spec: weights.WeightsSpec, source: Path) -> Path:
    cache.mkdir()
    target = cache / spec.filename
    shutil.copyfile(source, target)
    (cache / f"{spec.filename}.sha256").write_text(f"{weights.sha256_of(target)}  {spec.filename}\n")
    return target


def test_cached_registry_file_loads_and_a_changed_one_is_refused(
    tmp_path: Path, small_registry: weights.WeightsSpec, ref_dir: Path
) -> None:
    cache = tmp_path / "weights"
    target = _cache_with_record(cache, small_registry, ref_dir / "state_dict.pt")
    _check_output(load_gpen("GPEN-BFR-256", cache_dir=cache), ref_dir)

    blob = bytearray(target.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # a silent change of one byte: same size, same name
    target.write_bytes(bytes(blob))
    with pytest.raises(WeightsError) as info:
        load_gpen("GPEN-BFR-256", cache_dir=cache)
    message = str(info.value)
    assert "changed since it was downloaded" in message and "gpen-video download" in message


def test_registry_name_checks_the_files_architecture(
    tmp_path: Path, small_registry: weights.WeightsSpec, ref_dir: Path, monkeypatch
) -> None:
    spec512 = dataclasses.replace(weights.REGISTRY["GPEN-BFR-512"],
                                  url="http://gpen-video.invalid/GPEN-BFR-512.pth")
    monkeypatch.setitem(weights.REGISTRY, "GPEN-BFR-512", spec512)
    cache = tmp_path / "weights"
    cache.mkdir()
    shutil.copyfile(ref_dir / "state_dict.pt", cache / spec512.filename)  # the wrong model
    with pytest.raises(WeightsError, match=r"does not fit GPEN-BFR-512: size 512"):
        load_gpen("GPEN-BFR-512", cache_dir=cache)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(WeightsError) as info:
        load_gpen("GPEN-BFR-384")
    message = str(info.value)
    for name in ("GPEN-BFR-256", "GPEN-BFR-512", "GPEN-BFR-1024", "GPEN-BFR-2048"):
        assert name in message


def test_not_cached_without_download_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        load_gpen("GPEN-BFR-512", cache_dir=tmp_path)
    message = str(info.value)
    assert "gpen-video download GPEN-BFR-512" in message and "--model PATH" in message
    assert list(tmp_path.iterdir()) == []


def test_detector_registry_name_is_not_a_gpen() -> None:
    with pytest.raises(WeightsError, match="not a GPEN model"):
        load_gpen("retinaface-mobile0.25")


def test_random_weights_from_a_registry_name_need_no_file(tmp_path: Path) -> None:
    model = load_gpen("GPEN-BFR-256", cache_dir=tmp_path, random_weights=True, seed=1)
    assert model.config == weights.REGISTRY["GPEN-BFR-256"].gpen
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(WeightsError, match="random weights need an architecture"):
        load_gpen(tmp_path / "some.pth", random_weights=True)
