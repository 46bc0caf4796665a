"""Output-path safety: never the input, never overwrite unasked, never leave a partial file.

Every output is written to a temporary name beside the target (same folder, so the final
``os.replace`` is an atomic rename on one filesystem) and renamed only when complete. Image
sequences are written into a temporary folder beside the target and moved file by file.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

from gpen_video.errors import OutputError

TEMP_TAG = ".gpen-partial-"


def same_file(a: str | Path, b: str | Path) -> bool:
    """True if two paths name the same file (symlinks and hard links resolved)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(output: str | Path, input: str | Path | None = None,
                 overwrite: bool = False, image_sequence: bool = False) -> Path:
    """Validate an output path before any work is done; returns it as a Path.

    Raises:
        OutputError: output is the input; the output exists and ``overwrite`` is False; the
            folder is missing, not a folder, or not writable; the output is a folder.
    """
    output = Path(output)
    folder = output.parent if str(output.parent) else Path(".")
    if input is not None and not image_sequence and same_file(output, input):
        raise OutputError(f"output {output} is the input file: choose another output path")
    if not folder.exists():
        raise OutputError(f"output folder {folder} does not exist: create it first")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable (read-only or no "
                          "permission): choose another output folder")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder: give a file name")
    if output.exists() and not overwrite:
        raise OutputError(f"output {output} already exists: use -y (--overwrite) to replace it")
    return output


def temp_file_for(output: Path) -> Path:
    """Create (empty) and return a hidden temporary file beside ``output`` with its suffix.

    Raises:
        OutputError: the folder cannot be written.
    """
    folder = output.parent if str(output.parent) else Path(".")
    for _ in range(100):
        name = folder / f".{output.stem}{TEMP_TAG}{secrets.token_hex(4)}{output.suffix}"
        try:
            # mode 0o666 minus the umask: the renamed output gets the usual permissions
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot write in {folder}: {exc.strerror or exc}; choose "
                              "another output folder") from None
        os.close(fd)
        return name
    raise OutputError(f"cannot create a temporary file in {folder}")


def temp_dir_for(output: Path) -> Path:
    """Create and return a hidden temporary folder beside ``output`` (for image sequences).

    Raises:
        OutputError: the folder cannot be written.
    """
    try:
        name = tempfile.mkdtemp(prefix=f".{output.stem.replace('%', '')}{TEMP_TAG}",
                                dir=output.parent if str(output.parent) else ".")
    except OSError as exc:
        raise OutputError(f"cannot write in {output.parent or '.'}: {exc.strerror or exc}; "
                          "choose another output folder") from None
    return Path(name)


def finalize_file(temp: Path, output: Path, overwrite: bool) -> None:
    """Rename the finished temporary file onto ``output``.

    Raises:
        OutputError: ``output`` appeared meanwhile and ``overwrite`` is False (temp removed).
    """
    if not overwrite and output.exists():
        remove_quietly(temp)
        raise OutputError(f"output {output} appeared while writing: use -y (--overwrite) to "
                          "replace it")
    os.replace(temp, output)


def finalize_sequence(temp_dir: Path, output_folder: Path, overwrite: bool) -> list[Path]:
    """Move every file of a finished image sequence from ``temp_dir`` into ``output_folder``.

    All names are checked before anything moves, so a refusal moves nothing.

    Raises:
        OutputError: a target file exists and ``overwrite`` is False (temp folder removed).
    """
    names = sorted(p.name for p in temp_dir.iterdir())
    if not overwrite:
        clash = [n for n in names if (output_folder / n).exists()]
        if clash:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise OutputError(f"{len(clash)} output file(s) already exist (first: "
                              f"{output_folder / clash[0]}): use -y (--overwrite) to replace them")
    moved = []
    for name in names:
        target = output_folder / name
        os.replace(temp_dir / name, target)
        moved.append(target)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return moved


def remove_quietly(path: Path | None) -> None:
    """Delete a temporary file or folder, ignoring errors."""
    if path is None:
        return
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    except OSError:
        pass
