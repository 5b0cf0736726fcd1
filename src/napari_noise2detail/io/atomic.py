"""Writing results atomically: never a truncated file (or store) under a final name."""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def write_atomic(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(temp_path)`` on a temporary file beside ``path``, then rename it into place.

    The rename is atomic on one file system, so ``path`` is either absent, the old file, or the
    complete new one. An interrupted write removes its temporary; a killed process can leave
    only a hidden ``.<name>.<random>.partial`` file behind, never a truncated ``path``.
    """
    path = Path(path)
    # A fresh random name, not mkstemp: mkstemp's file is private (0600) and the rename would
    # keep that, while the writer creating the file gives it the user's usual permissions.
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.partial"
    with making_folder(path.parent):
        try:
            write(temp)
            os.replace(temp, path)
            _clear_leftovers(path)
        except BaseException:
            with suppress(OSError):  # a read-only folder refuses even this: its own error is the one to see
                Path(temp).unlink(missing_ok=True)
            raise
    return path


def _clear_leftovers(path: Path) -> None:
    """Remove what killed writes of ``path`` left beside it (hidden ``.partial`` and ``.old``
    files or folders, as big as the output): ``path`` is complete now, so they are of no use."""
    for leftover in path.parent.glob(f".{path.name}.*"):
        if leftover.suffix in (".partial", ".old"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with suppress(OSError):
                    leftover.unlink()


@contextmanager
def making_folder(folder: Path, keep: bool = True) -> Iterator[None]:
    """``folder``, made where missing; what was made is removed again (if still empty) when
    the block fails or is cancelled, so that a run stopped early leaves no empty folders, and
    always when not ``keep``."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]  # the deepest first
    done = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield
        done = True
    finally:
        if not (done and keep):
            for made in missing:
                with suppress(OSError):
                    made.rmdir()


def write_problem(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written in ``folder``, or None when they can: to refuse a run before
    its work rather than after it. Tried (the folders it lacks made, a file made there), not
    guessed from permissions; nothing it made is left."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return f"cannot write in {folder}: it is a file, not a folder"
    probe = folder / f".n2d-probe.{secrets.token_hex(6)}"
    try:
        with making_folder(folder, keep=False):
            probe.touch(exist_ok=False)
            probe.unlink()
    except OSError as err:
        return f"cannot write in {folder}: {err.strerror or err}"
    return None


def write_png(path: str | os.PathLike, rgb_or_grey: np.ndarray) -> Path:
    """Write a uint8 picture as PNG atomically."""
    import imageio.v3 as iio

    return write_atomic(path, lambda temp: iio.imwrite(temp, rgb_or_grey, extension=".png"))


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary folder beside ``path`` to fill (a zarr store, say); when the
    block ends without error it is renamed to ``path``, otherwise removed. An existing
    ``path`` is replaced only once the new one is complete."""
    path = Path(path)
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.partial"
    with making_folder(path.parent):
        try:
            yield temp
            if path.exists():
                old = path.parent / f".{path.name}.{secrets.token_hex(6)}.old"
                os.replace(path, old)
                os.replace(temp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(temp, path)
            _clear_leftovers(path)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
