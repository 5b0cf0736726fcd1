import pytest
import torch
import torch.nn.functional as F

from napari_noise2detail.engine.downsample import pair_downsample
from napari_noise2detail.engine.losses import pair_loss
from napari_noise2detail.engine.network import make_network

X = torch.tensor([[1.0, 9, 0, 0], [3, 4, 0, 8], [0, 0, 5, 0], [6, 0, 0, 7]])[None, None]


@pytest.mark.parametrize(
    "predict, expected",
    [
        # p = x: residual = MSE(D1, D2) = (3.5^2 + 4^2 + 3^2 + 6^2) / 4; consistency 0
        (lambda u: u, 18.3125),
        # p = 0: residual = (mean D1^2 + mean D2^2) / 2 = (14.5625 + 11.25) / 2; consistency 0
        (lambda u: 0 * u, 12.90625),
        # p = x + 1: residual = (17.5625 + 21.0625) / 2; consistency 0
        (lambda u: u + 1, 19.3125),
        # p = x^2: residual 352.0390625 + consistency (65.515625 + 40.5) / 2
        (lambda u: u * u, 405.046875),
    ],
)
def test_pair_loss_hand_computed(predict, expected):
    assert pair_loss(predict, X, X).item() == pytest.approx(expected)


def test_pair_loss_with_separate_input_and_target_is_stage_3():
    s = torch.full_like(X, 2.0)  # a "smooth" image: its two views agree
    # p = s: residual = 0.5 * (MSE(D1 y, 2) + MSE(D2 y, 2)); consistency 0
    d1, d2 = pair_downsample(X)
    expected = 0.5 * (((d1 - 2) ** 2).mean() + ((d2 - 2) ** 2).mean())
    assert pair_loss(lambda u: u, s, X).item() == pytest.approx(expected.item())


def test_batched_views_equal_the_method_written_out():
    f = make_network(1, 8, seed=0)
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y1, y2 = pair_downsample(y)
    p1, p2 = y1 - f(y1), y2 - f(y2)
    l_res = 0.5 * (F.mse_loss(y1, p2) + F.mse_loss(y2, p1))
    d = y - f(y)
    l_cons = 0.5 * (F.mse_loss(p1, pair_downsample(d)[0]) + F.mse_loss(p2, pair_downsample(d)[1]))
    got = pair_loss(lambda u: u - f(u), y, y)
    assert got.item() == pytest.approx((l_res + l_cons).item(), rel=1e-6)
