"""The plugin as napari finds it: the widget opens from the menu with the viewer, the sample
loads offline, the widget sits in the Layers > Filters menu."""

from npe2 import PluginManifest

from napari_noise2detail._napari.widget import DenoiseWidget


def test_manifest_validates():
    manifest = PluginManifest.from_distribution("napari-noise2detail")
    manifest.validate_imports()  # every python_name resolves


def test_dock_widget_opens_through_napari_with_the_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-noise2detail", "Noise2Detail")
    assert isinstance(widget, DenoiseWidget)
    layer = viewer.add_image(__import__("numpy").zeros((8, 8)), name="img")
    assert widget.layer.value is layer  # napari handed it (a proxy of) this viewer


def test_widget_is_in_the_layers_filter_menu(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()
    items = get_app_model().menus.get_menu("napari/layers/filter")
    assert "napari-noise2detail.denoise_widget" in [getattr(i, "command", i).id for i in items]


def test_sample_data_loads_without_network(make_napari_viewer, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the sample tried to use the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-noise2detail", "noisy_nuclei")
    (layer,) = viewer.layers
    assert layer.name == "noisy nuclei" and layer.data.shape == (256, 256)
    assert layer.data.dtype.kind == "u"


def test_both_docks_align_their_fields_and_scroll_in_a_short_window(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    docks = [viewer.window.add_plugin_dock_widget("napari-noise2detail", name)[1]
             for name in ("Noise2Detail", "Batch denoise...")]
    window.resize(1200, 700)  # a laptop's screen: the two docks' rows need over 1200 px
    qtbot.waitUntil(lambda: window.height() == 700, timeout=5_000)  # not pushed past the screen
    for dock in docks:
        # magicgui sizes labels in the application's font; napari's style gives them another
        # (here: a larger one), in which the labels stay one column
        font = dock.native.font()
        font.setPointSize(font.pointSize() + 6)
        dock.native.setFont(font)
        labels = [w._labeled_widget()[0].native for w in dock
                  if w._labeled_widget() is not None and w._labeled_widget()[0].native.text()]
        qtbot.waitUntil(lambda: len({label.width() for label in labels}) == 1, timeout=5_000)
        assert all(label.width() >= label.sizeHint().width() for label in labels)  # none cut
    denoise, batch = (w for w in window.findChildren(QScrollArea) if type(w).__name__ == "_Scroll")
    assert max(denoise.verticalScrollBar().maximum(), batch.verticalScrollBar().maximum()) > 0
    window.resize(1200, 1600)  # room for every row: nothing to scroll
    qtbot.waitUntil(lambda: window.height() == 1600, timeout=5_000)
    viewer.window.remove_dock_widget(batch.parentWidget())
    qtbot.waitUntil(lambda: denoise.verticalScrollBar().maximum() == 0, timeout=5_000)
