import pytest
import torch

from napari_noise2detail.engine.network import apply_tiled, bfloat16_copy, make_network


def test_architecture_matches_the_paper():
    net = make_network(1, 48)
    assert sum(p.numel() for p in net.parameters()) == 21313  # "about 21k parameters for C=1"
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3), (1, 1)]
    assert [c.padding for c in convs] == [(1, 1), (1, 1), (0, 0)]
    assert all(c.bias is not None for c in convs)
    assert [m.negative_slope for m in net if isinstance(m, torch.nn.LeakyReLU)] == [0.2, 0.2]
    assert net(torch.zeros(1, 3, 9, 7)[:, :1]).shape == (1, 1, 9, 7)
    assert make_network(3, 48)(torch.zeros(2, 3, 8, 8)).shape == (2, 3, 8, 8)


def test_seed_fixes_the_weights_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = make_network(1, 8, seed=5), make_network(1, 8, seed=5), make_network(1, 8, seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, c[0].weight)


@pytest.mark.parametrize("tile", [16, 20, 64])
@pytest.mark.parametrize("batch", [1, 3])
def test_tiled_inference_is_exact(tile, batch):
    net = make_network(2, 8, seed=3)
    x = torch.rand(batch, 2, 50, 37, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = net(x)
    assert torch.allclose(apply_tiled(net, x, tile), whole, atol=1e-6)


def test_small_images_go_through_in_chunks_of_about_a_tile(monkeypatch):
    net = make_network(1, 4, seed=0)
    sizes = []
    real_forward = net.forward
    monkeypatch.setattr(net, "forward", lambda x: sizes.append(x.shape[0]) or real_forward(x))
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        whole = real_forward(x)
    assert torch.allclose(apply_tiled(net, x, tile=16), whole, atol=1e-6)
    assert sizes == [4, 4, 4, 4]  # 16 x 16 pixels per forward: four 8 x 8 images at a time


def test_tiles_are_even_and_never_larger_than_asked(monkeypatch):
    from napari_noise2detail.engine.network import HALO

    net = make_network(1, 4, seed=0)
    shapes = []
    real_forward = net.forward
    monkeypatch.setattr(net, "forward", lambda x: shapes.append(tuple(x.shape[-2:])) or real_forward(x))
    x = torch.rand(1, 1, 100, 64)
    with torch.no_grad():
        whole = real_forward(x)
        assert torch.allclose(apply_tiled(net, x, tile=48), whole, atol=1e-6)
    # 100 rows in 3 tiles of 34 (not 48, 48 and a strip of 4), 64 columns in 2 of 32
    inner = {(h - 2 * HALO, w - 2 * HALO) for h, w in shapes}
    assert len(shapes) == 6 and max(h for h, _ in inner) <= 34 and max(w for _, w in inner) <= 32


def test_the_bfloat16_copy_keeps_float32s_precision_in_its_first_layer():
    torch.manual_seed(0)
    net = make_network(3, 48, seed=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3)  # biases and weights far from zero: their rounding would show
        x = 0.5 + 0.5 * torch.rand(2, 3, 64, 64)  # bright: the rounding of the input would show
        first = bfloat16_copy(net)[0](x).float()
        exact = net[0](x)
        naive = torch.nn.functional.conv2d(x.bfloat16(), net[0].weight.bfloat16(), net[0].bias.bfloat16(), padding=1)
        # what is left is the rounding of the result itself, which averages out over pixels;
        # rounding the weights and the bias shifts every pixel of a channel alike
        assert (first - exact).abs().max() <= 2**-8 * exact.abs().max()
        shift, naive_shift = ((v.float() - exact).mean(dim=(0, 2, 3)).abs().max() for v in (first, naive))
        assert shift < 0.25 * naive_shift
        out = bfloat16_copy(net)(x)
        assert out.dtype == torch.float32 and out.shape == x.shape
        assert (out - net(x)).abs().max() < 0.02 * net(x).abs().max()
        assert next(net.parameters()).dtype == torch.float32  # the original is left alone
