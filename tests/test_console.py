"""Command-line progress: a bar on a terminal, sparse plain lines in a log file, and other
libraries' log lines kept out of both."""

import io
import logging

from napari_noise2detail.console import ProgressDisplay


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_in_a_log_file_a_line_per_item_and_at_the_end_not_one_endless_line(monkeypatch):
    clock = iter(range(0, 10_000))
    monkeypatch.setattr("napari_noise2detail.console.time.monotonic", lambda: float(next(clock)))
    log = io.StringIO()
    with ProgressDisplay(stream=log, every=100) as bar:
        for i in range(200):
            bar.show(i / 400, f"1/2 a.tif: step {i}", item="a.tif")
        for i in range(200, 401):
            bar.show(i / 400, f"2/2 b.tif: step {i}", item="b.tif")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "  0% 1/2 a.tif: step 0"
    assert any(line.startswith(" 50% 2/2 b.tif") for line in lines)  # a new item: a line at once
    assert lines[-1] == "100% 2/2 b.tif: step 400"
    assert 4 <= len(lines) <= 8  # one every 100 s of 400, not 401


def test_images_that_alternate_do_not_print_a_line_each(monkeypatch):
    monkeypatch.setattr("napari_noise2detail.console.time.monotonic", lambda: 0.0)
    log = io.StringIO()
    with ProgressDisplay(stream=log) as bar:  # two images on two workers of a cluster
        for i in range(100):
            bar.show(i / 100, f"step {i}", item="a.tif" if i % 2 else "b.tif")
    assert len(log.getvalue().splitlines()) == 2


def test_on_a_terminal_a_bar_with_results_above_it(capsys):
    screen = Terminal()
    with ProgressDisplay("Noise2Detail (fast)", stream=screen) as bar:
        bar.show(0.5, "stage 2/3 (smoothing)")
        bar.write("denoised a.tif -> a_n2d_detail.tif")
    assert "Noise2Detail (fast):  50%" in screen.getvalue() and "\r" in screen.getvalue()
    assert "denoised a.tif -> a_n2d_detail.tif" in capsys.readouterr().out


def test_other_libraries_warnings_are_kept_out_of_the_display_errors_are_not(capsys, monkeypatch):
    log = io.StringIO()
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as on the command line: logging not set up
    handlers = list(root.handlers)
    with ProgressDisplay(stream=log) as bar:
        logging.getLogger("tifffile").warning("<tifffile.TiffPages @1768453152> invalid offset to first page")
        logging.getLogger("zarr.core").error("the store is read-only")
        logging.getLogger("napari_noise2detail.batch").warning("skipped a.tif")
        bar.show(1.0, "done")
    text = log.getvalue()
    assert "invalid offset" not in text and "invalid offset" not in capsys.readouterr().err
    assert "zarr.core: ERROR: the store is read-only" in text
    assert "napari_noise2detail.batch: WARNING: skipped a.tif" in text
    assert root.handlers == handlers  # logging as it was


def test_logging_that_was_set_up_is_left_alone(monkeypatch):
    root = logging.getLogger()
    mine = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(root, "handlers", [mine])
    with ProgressDisplay(stream=io.StringIO()):
        assert root.handlers == [mine]
