import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_noise2detail.engine.downsample import pair_downsample, polyphase_merge, polyphase_split

X = torch.tensor(
    [[1.0, 9, 0, 0], [3, 4, 0, 8], [0, 0, 5, 0], [6, 0, 0, 7]]
)[None, None]


def test_pair_downsample_hand_computed_4x4():
    d1, d2 = pair_downsample(X)
    # D1: mean of top-left and bottom-right of each 2x2 block; D2: top-right and bottom-left.
    assert d1[0, 0].tolist() == [[2.5, 4.0], [0.0, 6.0]]
    assert d2[0, 0].tolist() == [[6.0, 0.0], [3.0, 0.0]]


def test_pair_downsample_equals_the_strided_depthwise_filters():
    x = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(1))
    k1 = torch.tensor([[0.5, 0.0], [0.0, 0.5]]).expand(3, 1, 2, 2)
    k2 = torch.tensor([[0.0, 0.5], [0.5, 0.0]]).expand(3, 1, 2, 2)
    d1, d2 = pair_downsample(x)
    assert torch.allclose(d1, F.conv2d(x, k1, stride=2, groups=3))
    assert torch.allclose(d2, F.conv2d(x, k2, stride=2, groups=3))
    assert d1.shape == (2, 3, 5, 6)


@pytest.mark.parametrize("k", [2, 4])
def test_polyphase_split_layout_and_exact_inverse(k):
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(2))
    parts = polyphase_split(x, k)
    assert parts.shape == (k * k * 2, 3, 8 // k, 12 // k)
    for i in range(k):
        for j in range(k):
            for n in range(2):
                assert torch.equal(parts[(i * k + j) * 2 + n], x[n, :, i::k, j::k])
    assert torch.equal(polyphase_merge(parts, k), x)


def test_polyphase_merge_is_a_left_inverse_too():
    parts = torch.from_numpy(np.arange(4 * 1 * 2 * 3, dtype=np.float32).reshape(4, 1, 2, 3))
    assert torch.equal(polyphase_split(polyphase_merge(parts, 2), 2), parts)
