"""The noise estimate in plain words, with its units, whatever the sign of its constant."""

from napari_noise2detail._napari.noise_words import noise_words
from napari_noise2detail.engine.stabilise import NoiseModel


def test_shot_noise_above_a_camera_offset_has_no_negative_constant():
    # the built-in sample: gain 1, offset 100, read noise 2 -> variance = signal - 96
    short, full = noise_words(NoiseModel(a=1.02, b=-97.5, signal_dependent=True, level=200.0))
    assert short == "shot noise: variance grows with the signal (gain 1.02, offset about 95.6)"
    assert "-" not in short and "grey levels per detected photon" in full
    assert "variance = 1.02 x (signal - 95.6)" in full
    assert "cannot be told apart" in full and "±10.3 grey levels" in full


def test_shot_noise_with_read_noise_and_no_offset():
    short, _full = noise_words(NoiseModel(a=2.0, b=9.0, signal_dependent=True, level=50.0))
    assert short == "shot noise: variance grows with the signal (gain 2); read noise ±3"


def test_even_noise_and_stabilised_and_unknown():
    short, full = noise_words(NoiseModel(a=0.0, b=0.01, level=0.5))
    assert short == "even noise: ±0.1 grey levels at every brightness"
    assert "does not change with the brightness" in full
    short, full = noise_words(NoiseModel(a=1.0, b=-10.0, signal_dependent=True, stabilised=True, level=40.0))
    assert short.endswith("; fitted on the variance-stabilised image")
    assert noise_words(None)[0].startswith("could not be estimated")
    # stabilising asked for: said where it was not done
    even = NoiseModel(a=0.0, b=0.01, level=0.5)
    assert noise_words(even, asked_to_stabilise=True)[0].endswith("; not stabilised: it does not grow with the signal")
    shot = NoiseModel(a=1.0, b=-10.0, signal_dependent=True, stabilised=True, level=40.0)
    assert "not stabilised" not in noise_words(shot, asked_to_stabilise=True)[0]


def test_a_result_freed_of_the_clipping_bias_says_so():
    from napari_noise2detail.engine.clipping import Clipping

    short, full = noise_words(None, Clipping((21.5,), (0.0,), (None,)))
    assert short.startswith("could not be estimated") and short.endswith("clipped at 0: bias undone")
    assert "clipped at 0" in full and "±21.5 grey levels" in full
    short, _ = noise_words(NoiseModel(a=0.0, b=0.01, level=0.5), Clipping((0.1,), (None,), (4095.0,)))
    assert "even noise" in short and "clipped at 4.1e+03" in short
