"""Widget settings that come back the next time napari opens (a small JSON file), and the
paths the docks' file fields hold."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: Tests (and users who want it elsewhere) point this at another folder.
CONFIG_DIR_ENV = "NAPARI_NOISE2DETAIL_CONFIG_DIR"


def _path(name: str) -> Path:
    folder = os.environ.get(CONFIG_DIR_ENV)
    if not folder:
        from platformdirs import user_config_dir

        folder = user_config_dir("napari-noise2detail", appauthor=False)
    return Path(folder) / f"{name}.json"


def load(name: str) -> dict[str, Any]:
    """The saved settings, or {} when there are none or the file is unreadable."""
    try:
        saved = json.loads(_path(name).read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def chosen_path(edit: Any) -> Path | None:
    """The path typed or chosen in a magicgui ``FileEdit``, ``~`` expanded; None when it is
    empty (its value is then ".", the working folder, which nobody chose)."""
    text = edit.line_edit.value.strip()
    return Path(text).expanduser() if text else None


def save(name: str, values: dict[str, Any]) -> None:
    """Best effort: a read-only home folder must not break denoising."""
    path = _path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(values, indent=1))
        temp.replace(path)
    except OSError:
        pass
