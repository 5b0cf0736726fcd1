"""The docs say what napari shows: every menu path written in bold in the README and docs/
exists in napari's menus as the manifest fills them, and the tables of controls in
docs/usage.md name exactly the controls the two docks have."""

import re
from pathlib import Path

import pytest

from napari_noise2detail._napari.batch_widget import BatchWidget
from napari_noise2detail._napari.widget import DenoiseWidget

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = {"File": "napari/file", "Layers": "napari/layers", "Plugins": "napari/plugins"}
MENU_PATH = re.compile(r"\*\*((?:%s) > [^*]+)\*\*" % "|".join(TOP))


def documented_paths():
    return sorted({(path.name, m) for path in DOCS for m in MENU_PATH.findall(path.read_text())})


def resolve(menus, path):
    """Follow ``A > B > C`` through napari's menus; the last part is a submenu or an item."""
    first, *rest = [part.strip() for part in path.split(">")]
    menu = TOP[first]
    for i, part in enumerate(rest):
        for item in menus.get_menu(menu):
            title = getattr(item, "title", None) or getattr(getattr(item, "command", None), "title", "")
            if title.replace("&&", "&") == part:
                if hasattr(item, "submenu"):
                    menu = item.submenu
                    break
                if i == len(rest) - 1:
                    return True
        else:
            return False
    return True


def test_every_documented_menu_path_is_in_napari(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()  # registers the plugin's menu items
    menus = get_app_model().menus
    paths = documented_paths()
    assert any("Open Sample" in p for _, p in paths) and any("Batch denoise" in p for _, p in paths)
    missing = [f"{name}: {p}" for name, p in paths if not resolve(menus, p)]
    assert not missing, f"documented menu entries napari does not have: {missing}"


def table_names(heading):
    """The bold names in the first column of the table under ``heading`` in docs/usage.md."""
    text = (ROOT / "docs" / "usage.md").read_text()
    section = text.split(heading, 1)[1]
    table = section[section.index("| control"):].split("\n\n", 1)[0]
    names = set()
    for row in table.splitlines()[2:]:
        names |= set(re.findall(r"\*\*(.+?)\*\*", row.split("|")[1]))
    return names


def control_names(container):
    """What the dock shows to name its controls: row labels, button and check box texts."""
    names = set()
    for widget in container:
        text = getattr(widget, "text", None)
        if text:
            names.add(text)
        elif widget.label:
            names.add(widget.label)
        if hasattr(widget, "__iter__") and not hasattr(widget, "choose_btn"):  # a row of buttons
            names |= control_names(widget)
    return names


@pytest.mark.parametrize("heading, widget_type", [
    ("## In napari: the Noise2Detail widget", DenoiseWidget),
    ("## Many images: Batch denoise...", BatchWidget),
])
def test_the_documented_controls_are_the_docks(make_napari_viewer, heading, widget_type):
    widget = widget_type(make_napari_viewer())
    shown = {name for name in control_names(widget) if name}
    assert table_names(heading) == shown
