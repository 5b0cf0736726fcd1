"""Nonlocal pairs: the banks of similar pixels and the pairs drawn from them."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from napari_noise2detail.engine.bank import BankPairs, draw_members, gather_pixels, similar_pixels


def brute_force_distances(image: torch.Tensor, window: int, patch: int) -> dict:
    """{(y, x): {flat index of a candidate: its patch distance}} for one (1, C, H, W) image,
    written out pixel by pixel (reflected borders, candidates inside the image only)."""
    _n, _c, h, w = image.shape
    r, q = window // 2, patch // 2
    padded = F.pad(image, (q, q, q, q), mode="reflect")[0]
    out = {}
    for y, x in itertools.product(range(h), range(w)):
        here = padded[:, y : y + patch, x : x + patch]
        out[y, x] = {
            yy * w + xx: float(((here - padded[:, yy : yy + patch, xx : xx + patch]) ** 2).sum())
            for yy in range(max(0, y - r), min(h, y + r + 1))
            for xx in range(max(0, x - r), min(w, x + r + 1))
        }
    return out


def test_bank_holds_the_most_similar_pixels_of_a_brute_force_search():
    # random values: no ties, so the members and their order are unique
    image = torch.rand(1, 2, 13, 17, generator=torch.Generator().manual_seed(0))
    bank = similar_pixels(image, members=6, window=7, patch=3)
    assert bank.shape == (1, 6, 13, 17) and bank.dtype == torch.long
    same, distance = similar_pixels(image, members=6, window=7, patch=3, distances=True)
    assert torch.equal(same, bank) and distance.shape == bank.shape
    for (y, x), candidates in brute_force_distances(image, 7, 3).items():
        nearest = sorted(candidates, key=candidates.get)[:6]
        assert bank[0, :, y, x].tolist() == nearest
        # their distances, nearest first; the pixel's own marked -1
        assert distance[0, :, y, x].tolist() == pytest.approx([-1.0] + [candidates[m] for m in nearest[1:]], abs=1e-5)


def test_bank_finds_the_repeats_of_a_repeated_pattern():
    # a tile of random values repeated with period 5 both ways, in a 30x30 image: away from
    # the borders, every pixel's closest patches are its exact repeats (distance 0)
    tile = torch.rand(1, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    image = tile.repeat(1, 1, 6, 6)
    bank = similar_pixels(image, members=5, window=11, patch=5)
    distances = brute_force_distances(image, 11, 5)
    for y, x in itertools.product(range(30), range(30)):
        members = bank[0, :, y, x].tolist()
        assert members[0] == y * 30 + x  # the pixel itself first
        # the same distances as the brute-force nearest (ties may be broken either way)
        best = sorted(distances[y, x].values())[:5]
        assert [distances[y, x][m] for m in members] == pytest.approx(best, abs=1e-5)
        if 7 <= y < 23 and 7 <= x < 23:
            for m in members:  # exact repeats: same place in the tile, same value
                my, mx = divmod(m, 30)
                assert (my - y) % 5 == 0 and (mx - x) % 5 == 0


def test_reference_banks_and_distances_are_the_full_ones_on_a_grid():
    guide = torch.rand(1, 2, 23, 19, generator=torch.Generator().manual_seed(3))
    bank, distance = similar_pixels(guide, 6, 7, 3, distances=True)
    grid, near = similar_pixels(guide, 6, 7, 3, step=4, first=(3, 2), distances=True)
    assert torch.equal(grid, bank[:, :, 3::4, 2::4]) and torch.allclose(near, distance[:, :, 3::4, 2::4])


def test_bank_chunks_do_not_change_it():
    image = torch.rand(2, 1, 24, 20, generator=torch.Generator().manual_seed(2))
    assert torch.equal(similar_pixels(image, 8, 9, 5, chunk=7), similar_pixels(image, 8, 9, 5, chunk=81))
    # each plane is searched on its own: the bank of a plane does not depend on the others
    assert torch.equal(similar_pixels(image[1:], 8, 9, 5), similar_pixels(image, 8, 9, 5)[1:])


def test_bank_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="odd"):
        similar_pixels(torch.rand(1, 1, 16, 16), window=8)
    with pytest.raises(ValueError, match="members"):
        similar_pixels(torch.rand(1, 1, 16, 16), members=10, window=3)


def test_two_draws_are_never_the_same_member():
    first, second = draw_members(4, (200_000,), torch.Generator().manual_seed(0))
    assert not torch.any(first == second)
    # every ordered pair of different members turns up, about equally often
    counts = torch.bincount(first * 4 + second, minlength=16).float()
    off_diagonal = counts[[i * 4 + j for i in range(4) for j in range(4) if i != j]]
    assert counts[[0, 5, 10, 15]].sum() == 0
    assert off_diagonal.min() > 0.9 * off_diagonal.mean()


def test_pairs_read_different_members_of_each_pixels_bank():
    # each pixel's value is its own flat index, so a pair tells which member it read
    h, w = 12, 14
    image = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    guide = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(3))
    bank = similar_pixels(guide, members=4, window=5, patch=3)
    # the fit's crops; from_self: the input is the pixel, the target never is
    for from_self in (False, True):
        pairs = BankPairs(image, image, bank, 6, 3, 5, torch.Generator().manual_seed(1), from_self=from_self)
        for _ in range(5):
            x, t = pairs()
            assert x.shape == t.shape == (3, 1, 6, 6)
            assert not torch.any(x == t)
            # both pixels of every pair are members of one pixel's bank
            sets = bank[0].reshape(4, -1).T  # (H * W, members)
            inside = [(sets[None] == v.reshape(-1, 1, 1).long()).any(-1) for v in (x, t)]  # (pairs, H * W)
            assert torch.all((inside[0] & inside[1]).any(-1))
            if from_self:  # a crop of the image itself, at even coordinates
                top, left = divmod(int(x[0, 0, 0, 0]), w)
                assert top % 2 == 0 and left % 2 == 0
                assert torch.equal(x[0], image[0, :, top : top + 6, left : left + 6])


def test_pairs_of_a_constant_image_are_constant():
    image = torch.full((2, 1, 16, 16), 0.3)
    bank = similar_pixels(image, members=8, window=7, patch=3)
    pairs = BankPairs(image, image, bank, 8, 4, 3, torch.Generator().manual_seed(0))
    for _ in range(3):
        x, t = pairs()
        assert torch.all(x == 0.3) and torch.all(t == 0.3)
    whole = BankPairs(image, image, bank, None, 1, 2, torch.Generator().manual_seed(0))()
    assert whole[0].shape == (2, 1, 16, 16)


def test_pairs_are_determined_by_the_seed():
    image = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(4))
    bank = similar_pixels(image, members=8, window=7, patch=3)
    one = BankPairs(image, image, bank, 8, 2, 4, torch.Generator().manual_seed(5))
    two = BankPairs(image, image, bank, 8, 2, 4, torch.Generator().manual_seed(5))
    other = BankPairs(image, image, bank, 8, 2, 4, torch.Generator().manual_seed(6))
    differs = False
    for _ in range(4):
        (x1, t1), (x2, t2), (x3, _t3) = one(), two(), other()
        assert torch.equal(x1, x2) and torch.equal(t1, t2)
        differs |= not torch.equal(x1, x3)
    assert differs


def test_gather_pixels_reads_flat_indices_per_plane():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    index = torch.tensor([[[0, 19]], [[7, 7]]])  # (N, 1, 2)
    out = gather_pixels(x, index)
    assert out.shape == (2, 3, 1, 2)
    assert torch.equal(out[0, :, 0, 1], x[0, :, 3, 4]) and torch.equal(out[1, :, 0, 0], x[1, :, 1, 2])


def test_banks_of_a_big_image_stay_bounded():
    # a 4096x4096 image: the banks (and the values the pairs read) cover only BANK_PIXELS
    # pixels of tiles, whatever the image's size; every pair still reads two members
    from napari_noise2detail.engine.bank import BANK_PIXELS, BANK_TILE
    from napari_noise2detail.engine.pairs import training_pairs
    from napari_noise2detail.engine.presets import Fit, Settings

    image = torch.rand(1, 1, 4096, 4096, generator=torch.Generator().manual_seed(7))
    settings = Settings(pairs="nonlocal", bank_members=4, bank_window=5, bank_patch=3)
    how = Fit(steps=3, lr=1e-3, schedule="step", crop=32, batch=4)
    sample, _loss = training_pairs("nonlocal", image, image, image, how, torch.Generator().manual_seed(0), settings)
    assert sample.bank.shape[1:] == (4, BANK_TILE * BANK_TILE)
    assert sample.bank.numel() <= 4 * BANK_PIXELS
    assert sample.values.numel() <= 2 * BANK_PIXELS
    x, t = sample()
    assert x.shape == t.shape == (4, 1, 32, 32) and not torch.any(x == t)
