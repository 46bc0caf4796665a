"""Which files of an engine folder this version of gpen-video will never use again.

An engine folder only grows: every change of weights, export recipe, precision rewrite format,
engine build recipe or TensorRT version leaves the earlier files behind, each hundreds of MB for
the larger models (``benchmarks/RESULTS.md``, "Numbers behind design choices"). Stale, by file kind:

* ONNX export ``…-opset<N>-r<R>-<key>.onnx``: ``R`` is not
  :data:`~gpen_video.engine.onnx_cache.EXPORT_RECIPE` (names without ``-r<R>-``: recipe 1);
* precision graph ``<export>.<fp16|bf16>-<policy>-m<F>.onnx``: ``F`` is not
  :data:`~gpen_video.engine.mixed.FORMAT`, or its export is gone or stale;
* TensorRT plan ``*.plan``: no gate report beside it (never used without one), its report's key
  has another build recipe, or it was built by another TensorRT than the installed one;
  gate reports (``.json``, ``.rejected.json``) go with their plan, or alone when stale likewise;
* timing cache ``timing-trt<version>-….cache``: another TensorRT than the installed one;
* torch quality-gate verdict ``torch-gate-….json`` (:mod:`gpen_video.backends.torch_gate`):
  written under another torch than ``torch_version``, when that is given.

Damaged files (:func:`cache_problems`): every artifact whose content fails its hash
(:mod:`gpen_video.engine.artifact`), hashes whose file is gone, temporary files of writes that
never finished.

Where TensorRT is not installed, plans and timing caches are judged by recipe only. Lock files and
anything not named like the above (``README.md``) are left alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

_STALE_PART_SECONDS = 3600.0  # a temporary cache file older than this has no live writer


@dataclass(frozen=True)
class Stale:
    path: Path
    why: str


def stale_files(folder: Path, tensorrt_version: str | None = None,
                torch_version: str | None = None) -> list[Stale]:
    """The files of ``folder`` that the current recipes (and ``tensorrt_version`` and
    ``torch_version``, if given) will not use again, with the reason for each; nothing is
    deleted here."""
    from gpen_video.engine.key import BUILD_RECIPE, timing_cache_version
    from gpen_video.engine.mixed import FORMAT, parse_name
    from gpen_video.engine.onnx_cache import EXPORT_RECIPE, export_recipe_of

    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file())
    names = {p.name for p in files}
    stale: dict[Path, str] = {}

    current_exports = set()
    for p in files:
        recipe = export_recipe_of(p.name)
        if recipe is None or parse_name(p.name) is not None:
            continue
        if recipe != EXPORT_RECIPE:
            stale[p] = f"ONNX export of recipe {recipe} (now {EXPORT_RECIPE})"
        else:
            current_exports.add(p.stem)
    for p in files:
        parsed = parse_name(p.name)
        if parsed is None:
            continue
        export, fmt = parsed
        if fmt != FORMAT:
            stale[p] = f"precision graph of format {fmt} (now {FORMAT})"
        elif export not in current_exports:
            stale[p] = "precision graph of an export that is gone or stale"

    for p in files:
        if p.suffix != ".plan":
            continue
        reports = [folder / f"{p.stem}.json", folder / f"{p.stem}.rejected.json"]
        why = _plan_staleness(folder / f"{p.stem}.json", BUILD_RECIPE, tensorrt_version)
        if why is not None:
            stale[p] = why
            for r in reports:
                if r.name in names:
                    stale[r] = f"gate report of a stale plan ({why})"
    for p in files:
        record = _read_json(p) if p.name.endswith(".json") and p not in stale else None
        if record is None or "extra" not in record:
            continue  # judged with its plan, or not a gate report of ours
        if p.name.endswith(".rejected.json"):  # a cached verdict: kept while it still applies
            why = _key_staleness(record, BUILD_RECIPE, tensorrt_version)
            if why is not None:
                stale[p] = f"rejected build: {why}"
        elif f"{p.name[:-len('.json')]}.plan" not in names:
            stale[p] = "gate report without its plan"
    for p in files:
        version = timing_cache_version(p.name)
        if version is not None and tensorrt_version is not None and version != tensorrt_version:
            stale[p] = f"timing cache of TensorRT {version} (installed: {tensorrt_version})"
    for p in files:
        why = _torch_gate_staleness(p, torch_version)
        if why is not None:
            stale[p] = why
    for p in files:
        for item, why in _torch_engine_staleness(p, torch_version):
            stale[item] = why
    return [Stale(p, why) for p, why in sorted(stale.items())]


def _torch_engine_staleness(path: Path, torch_version: str | None) -> list[tuple[Path, str]]:
    """A tactic plan (``tactics-….json``) or a compiled engine (``.pt2`` and its record) made
    by an earlier recipe or another torch version, or a package without its record."""
    from gpen_video.engine.compiled import COMPILE_RECIPE
    from gpen_video.engine.tactics import TACTICS_RECIPE

    if path.name.startswith("tactics-") and path.suffix == ".json":
        record = _read_json(path) or {}
        torch_of = str(record.get("key", {}).get("torch", ""))
        if record.get("recipe") != TACTICS_RECIPE:
            return [(path, f"tactic plan of recipe {record.get('recipe')} (now {TACTICS_RECIPE})")]
        if torch_version and torch_of != torch_version.split("+")[0]:
            return [(path, f"tactic plan timed with torch {torch_of} (installed: "
                           f"{torch_version})")]
        return []
    if path.suffix != ".pt2":
        return []
    record_path = path.with_suffix(".json")
    record = _read_json(record_path)
    if record is None:
        return [(path, "compiled engine without its record")]
    torch_of = str(record.get("key", {}).get("torch", ""))
    why = None
    if record.get("recipe") != COMPILE_RECIPE:
        why = f"compiled engine of recipe {record.get('recipe')} (now {COMPILE_RECIPE})"
    elif torch_version and torch_of != torch_version:
        why = f"compiled engine of torch {torch_of} (installed: {torch_version})"
    return [(path, why), (record_path, why)] if why else []


def _torch_gate_staleness(path: Path, torch_version: str | None) -> str | None:
    if torch_version is None or not path.name.startswith("torch-gate-"):
        return None
    record = _read_json(path) if path.suffix == ".json" else None
    if record is None or record.get("kind") != "torch-precision-gate":
        return None
    made_by = (record.get("key") or {}).get("torch_version")
    if made_by != torch_version:
        return f"torch quality-gate verdict of torch {made_by} (installed: {torch_version})"
    return None


def _plan_staleness(report: Path, recipe: int, tensorrt_version: str | None) -> str | None:
    record = _read_json(report)
    if record is None:
        return "TensorRT plan without a gate report"
    return _key_staleness(record, recipe, tensorrt_version)


def _key_staleness(record: dict, recipe: int, tensorrt_version: str | None) -> str | None:
    key = (record.get("extra") or {}).get("key") or {}
    built_recipe = key.get("recipe", 1)
    if built_recipe != recipe:
        return f"engine of build recipe {built_recipe} (now {recipe})"
    built_by = key.get("tensorrt_version")
    if tensorrt_version is not None and built_by not in (None, tensorrt_version):
        return f"engine built by TensorRT {built_by} (installed: {tensorrt_version})"
    return None


def _read_json(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _gate_report_of_plan(path: Path) -> bool:
    name = path.name
    stem = name[:-len(".rejected.json")] if name.endswith(".rejected.json") else \
        name[:-len(".json")] if name.endswith(".json") else None
    return stem is not None and path.with_name(stem + ".plan").exists()


def is_artifact_name(name: str) -> bool:
    """Whether a file name is one of the engine cache's artifacts: an ONNX export or precision
    graph, a TensorRT plan or gate report, a timing cache, a torch quality-gate verdict."""
    from gpen_video.engine.key import timing_cache_version
    from gpen_video.engine.mixed import parse_name
    from gpen_video.engine.onnx_cache import export_recipe_of

    return (export_recipe_of(name) is not None or parse_name(name) is not None
            or name.endswith(".plan") or timing_cache_version(name) is not None
            or (name.startswith("torch-gate-") and name.endswith(".json")))


def cache_problems(folder: Path | str) -> list[tuple[Path, str]]:
    """(file, what is wrong) for every damaged artifact, orphaned hash and abandoned temporary
    file in ``folder`` (nothing is changed). Artifacts: every file with a hash beside it, and
    every file named like one (:func:`is_artifact_name`; a gate report goes with its plan);
    lock files and other names (``README.md``) are not looked at."""
    from gpen_video.engine.artifact import HASH_SUFFIX, PART_SUFFIX, damage, hash_path

    folder = Path(folder)
    if not folder.is_dir():
        return []
    problems = []
    now = time.time()
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if p.name.startswith(".") and p.name.endswith(PART_SUFFIX):
            try:
                if now - p.stat().st_mtime > _STALE_PART_SECONDS:
                    problems.append((p, "temporary file of a write that never finished"))
            except OSError:
                pass
        elif p.name.endswith(HASH_SUFFIX):
            if not p.with_name(p.name[:-len(HASH_SUFFIX)]).exists():
                problems.append((p, "hash of a file that is gone (orphaned)"))
        elif not p.name.startswith(".") and (hash_path(p).exists() or is_artifact_name(p.name)
                                             or _gate_report_of_plan(p)):
            why = damage(p)
            if why is not None:
                problems.append((p, f"damaged: {why}"))
    return problems
