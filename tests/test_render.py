"""backend.field.render against hand-computed cases and a brute-force gsplat-style rasterizer."""

import math

import pytest
import torch
from reference_rasterizer import reference_render

from backend.field import render as R

F_PX, WIDTH, HEIGHT = 20.0, 32, 24


def camera(width=WIDTH, height=HEIGHT, f=F_PX, cx=None, cy=None):
    K = torch.tensor(
        [[f, 0.0, width / 2 if cx is None else cx], [0.0, f, height / 2 if cy is None else cy], [0.0, 0.0, 1.0]]
    )
    return torch.eye(4), K


def scene(points, scales, opacities, quats=None):
    means = torch.tensor(points, dtype=torch.float32).reshape(-1, 3)
    n = len(means)
    s = torch.tensor(scales, dtype=torch.float32).reshape(-1, 1).expand(n, 3).contiguous()
    q = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1) if quats is None else quats
    return means, q, s, torch.tensor(opacities, dtype=torch.float32).reshape(n)


def dense(W):
    return W.to_dense()


def test_project_isotropic_gaussian_facing_camera():
    viewmat, K = camera(cx=16.0, cy=12.0)
    means, quats, scales, ops = scene([0.0, 0.0, 4.0], 0.4, 0.8)
    quats = quats * 3.0  # not normalised: the rotation is the same
    means2d, conics, depths, radii = R.project(means, quats, scales, viewmat, K, WIDTH, HEIGHT)
    var = (F_PX * 0.4 / 4.0) ** 2 + 0.3  # EWA projection + eps2d blur
    assert torch.allclose(means2d[0], torch.tensor([16.0, 12.0]))
    assert torch.allclose(conics[0], torch.tensor([1 / var, 0.0, 1 / var]), atol=1e-6)
    assert depths[0].item() == pytest.approx(4.0)
    assert radii[0].item() == math.ceil(3.33 * math.sqrt(var))  # no opacities: gsplat's 3.33 sigma
    _, _, _, radii = R.project(means, quats, scales, viewmat, K, WIDTH, HEIGHT, opacities=ops)
    extend = math.sqrt(2 * math.log(0.8 * 255))  # opacity-aware box, as in gsplat.rasterization
    assert radii[0].item() == math.ceil(extend * math.sqrt(var))


def test_single_gaussian_is_the_analytic_2d_gaussian():
    viewmat, K = camera(cx=16.0, cy=12.0)
    means, quats, scales, ops = scene([0.0, 0.0, 4.0], 0.4, 0.8)
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, WIDTH, HEIGHT)
    assert W.layout == torch.sparse_csr and W.shape == (WIDTH * HEIGHT, 1)
    var = (F_PX * 0.4 / 4.0) ** 2 + 0.3
    ys, xs = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    d2 = (xs + 0.5 - 16.0) ** 2 + (ys + 0.5 - 12.0) ** 2
    expected = 0.8 * torch.exp(-0.5 * d2 / var)
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))
    got = dense(W)[:, 0].reshape(HEIGHT, WIDTH)
    assert torch.allclose(got, expected, atol=1e-6)
    # a few pixels by hand: centre pixel (16, 12) has its centre at (16.5, 12.5)
    assert got[12, 16].item() == pytest.approx(0.8 * math.exp(-0.25 / var), rel=1e-5)
    assert got[12, 19].item() == pytest.approx(0.8 * math.exp(-0.5 * (3.5**2 + 0.25) / var), rel=1e-5)
    assert ((got > 0) == (expected > 0)).all()  # the 1/255 cut, on both sides


def test_two_overlapping_gaussians_composite_front_to_back():
    viewmat, K = camera(cx=16.0, cy=12.0)
    # index 0 is behind index 1: order must come from depth, not from the index
    means, quats, scales, ops = scene([[0.0, 0.0, 6.0], [0.0, 0.0, 3.0]], [0.6, 0.3], [0.7, 0.5])
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, WIDTH, HEIGHT)
    p = 12 * WIDTH + 16
    row = slice(W.crow_indices()[p].item(), W.crow_indices()[p + 1].item())
    assert W.col_indices()[row].tolist() == [1, 0]  # front first
    a_back = 0.7 * math.exp(-0.25 / ((F_PX * 0.6 / 6.0) ** 2 + 0.3))
    a_front = 0.5 * math.exp(-0.25 / ((F_PX * 0.3 / 3.0) ** 2 + 0.3))
    w_front, w_back = W.values()[row].tolist()
    assert w_front == pytest.approx(a_front, rel=1e-5)
    assert w_back == pytest.approx((1 - a_front) * a_back, rel=1e-5)
    colors = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    image, alpha = R.rasterize(means, quats, scales, ops, colors, viewmat, K, WIDTH, HEIGHT)
    assert image[12, 16].tolist() == pytest.approx([w_front, 0.0, w_back], rel=1e-5)
    assert alpha[12, 16, 0].item() == pytest.approx(w_front + w_back, rel=1e-5)


@pytest.mark.parametrize(
    "point",
    [
        [0.0, 0.0, -3.0],  # behind the camera
        [0.0, 0.0, 0.005],  # in front of the camera but before the 0.01 near plane
        [40.0, 0.0, 4.0],  # far right of the image
        [0.0, -30.0, 4.0],  # far above the image
    ],
)
def test_culled_gaussians_contribute_nothing(point):
    viewmat, K = camera()
    means, quats, scales, ops = scene([point, [0.0, 0.0, 4.0]], [0.1, 0.4], [0.9, 0.5])
    _, _, _, radii = R.project(means, quats, scales, viewmat, K, WIDTH, HEIGHT, opacities=ops)
    assert radii[0].item() == 0 and radii[1].item() > 0
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, WIDTH, HEIGHT)
    assert (W.col_indices() == 1).all()
    alone = R.composite_weights(means[1:], quats[1:], scales[1:], ops[1:], viewmat, K, WIDTH, HEIGHT)
    assert torch.equal(W.values(), alone.values())


def test_opacity_below_1_over_255_is_culled_and_alpha_is_capped():
    viewmat, K = camera(cx=16.0, cy=12.0)
    big = 50.0  # covers the image almost flat: alpha ~ opacity everywhere
    means, quats, scales, ops = scene([0.0, 0.0, 4.0], big, 1.0)
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, WIDTH, HEIGHT)
    assert W.values().max().item() == pytest.approx(R.ALPHA_MAX)  # gsplat clamps at 0.999
    assert R.ALPHA_MAX == 0.999
    W = R.composite_weights(means, quats, scales, ops * 0.99 / 255, viewmat, K, WIDTH, HEIGHT)
    assert W._nnz() == 0
    W = R.composite_weights(means, quats, scales, ops * 1.01 / 255, viewmat, K, WIDTH, HEIGHT)
    assert W._nnz() == WIDTH * HEIGHT  # just above the cut: every pixel (the falloff is < 1%)


def test_pixel_stops_before_transmittance_reaches_1e_4():
    viewmat, K = camera(cx=16.0, cy=12.0)
    n = 5
    means, quats, scales, ops = scene([[0.0, 0.0, 3.0 + i] for i in range(n)], 50.0, [0.95] * n)
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, WIDTH, HEIGHT)
    p = 12 * WIDTH + 16
    row = slice(W.crow_indices()[p].item(), W.crow_indices()[p + 1].item())
    assert W.col_indices()[row].tolist() == [0, 1, 2]  # T: .05, .0025, 1.25e-4, then 6e-6 stops
    alphas = [0.95 * math.exp(-0.25 / ((F_PX * 50.0 / (3.0 + i)) ** 2 + 0.3)) for i in range(3)]
    T, expected = 1.0, []
    for a in alphas:
        expected.append(a * T)
        T *= 1 - a
    assert W.values()[row].tolist() == pytest.approx(expected, rel=1e-5)


# --- a brute-force reference: gsplat's tile rasterizer, one Gaussian at a time -------------


def random_scene(n=160, seed=0, channels=5):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * torch.tensor([5.0, 4.0, 7.0]) - torch.tensor([2.5, 2.0, 1.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.rand(n, 3, generator=g) * 2.5 - 3.5)
    opacities = torch.rand(n, generator=g)
    opacities[:5] = 0.999  # some nearly opaque ones, to reach the transmittance stop
    colors = torch.rand(n, channels, generator=g)
    viewmat = torch.eye(4)
    viewmat[:3, 3] = torch.tensor([0.1, -0.2, 0.5])
    K = torch.tensor([[30.0, 0.0, 21.3], [0.0, 31.0, 14.8], [0.0, 0.0, 1.0]])
    return means, quats, scales, opacities, colors, viewmat, K, 43, 30  # not multiples of 16


def test_random_scene_matches_brute_force_gsplat_loop():
    means, quats, scales, ops, colors, viewmat, K, width, height = random_scene()
    ref_w, ref_image, ref_alpha = reference_render(means, quats, scales, ops, colors, viewmat, K, width, height)
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, width, height)
    assert W._nnz() == int((ref_w > 0).sum())
    assert torch.allclose(dense(W), ref_w, atol=2e-6)
    image, alpha = R.rasterize(means, quats, scales, ops, colors, viewmat, K, width, height)
    assert image.shape == (height, width, 5) and alpha.shape == (height, width, 1)
    assert torch.allclose(image, ref_image, atol=1e-5)
    assert torch.allclose(alpha, ref_alpha, atol=1e-5)
    assert (ref_alpha > 0.99).any() and (ref_alpha == 0).any()  # the scene tests both ends


def test_weights_times_colors_is_rasterize_and_rows_sum_to_alpha():
    means, quats, scales, ops, colors, viewmat, K, width, height = random_scene(seed=1)
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, width, height)
    image, alpha = R.rasterize(means, quats, scales, ops, colors, viewmat, K, width, height)
    assert torch.allclose((W @ colors).reshape(height, width, -1), image, atol=1e-6)
    assert torch.allclose(dense(W).sum(1).reshape(height, width, 1), alpha, atol=1e-6)
    assert alpha.max() <= 1.0
    bg = torch.arange(5, dtype=torch.float32)
    image_bg, _ = R.rasterize(means, quats, scales, ops, colors, viewmat, K, width, height, background=bg)
    assert torch.allclose(image_bg, image + (1 - alpha) * bg, atol=1e-6)


def test_band_splitting_and_tile_size_do_not_change_the_result():
    means, quats, scales, ops, _, viewmat, K, width, height = random_scene(seed=2)
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, width, height)
    for kwargs in ({"max_fragments": 30}, {"tile_size": 5}, {"tile_size": 64}):
        other = R.composite_weights(means, quats, scales, ops, viewmat, K, width, height, **kwargs)
        assert torch.equal(other.crow_indices(), W.crow_indices())
        assert torch.equal(other.col_indices(), W.col_indices())
        assert torch.equal(other.values(), W.values())


def test_sampled_pixels_and_gradient_reach_colors():
    means, quats, scales, ops, colors, viewmat, K, width, height = random_scene(seed=3, channels=24)
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, width, height)
    full = R.apply_weights(W, colors)
    pixels = torch.tensor([0, 5, 400, 401, 5, width * height - 1])
    assert torch.allclose(R.apply_weights(W, colors, pixels), full[pixels], atol=1e-6)
    feats = colors.clone().requires_grad_(True)
    R.apply_weights(W, feats, pixels).sum().backward()
    expected = dense(W)[pixels].sum(0)[:, None].expand_as(colors)
    assert torch.allclose(feats.grad, expected, atol=1e-6)
    feats.grad = None
    image, _ = R.rasterize(means, quats, scales, ops, feats, viewmat, K, width, height)
    image.sum().backward()
    assert torch.allclose(feats.grad, dense(W).sum(0)[:, None].expand_as(colors), atol=1e-5)


def test_nothing_visible_gives_an_empty_image():
    viewmat, K = camera()
    means, quats, scales, ops = scene([[0.0, 0.0, -1.0], [0.0, 0.0, -2.0]], 0.3, [0.5, 0.5])
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, WIDTH, HEIGHT)
    assert W._nnz() == 0 and W.shape == (WIDTH * HEIGHT, 2)
    image, alpha = R.rasterize(means, quats, scales, ops, torch.ones(2, 3), viewmat, K, WIDTH, HEIGHT)
    assert image.shape == (HEIGHT, WIDTH, 3) and not image.any() and not alpha.any()


def test_render_picks_a_backend():
    means, quats, scales, ops, colors, viewmat, K, width, height = random_scene(seed=4)
    image, alpha = R.render(means, quats, scales, ops, colors, viewmat, K, width, height, backend="torch")
    expected, _ = R.rasterize(means, quats, scales, ops, colors, viewmat, K, width, height)
    assert torch.equal(image, expected)
    auto, _ = R.render(means, quats, scales, ops, colors, viewmat, K, width, height)  # CPU tensors
    assert torch.equal(auto, expected)
    with pytest.raises(ValueError):
        R.render(means, quats, scales, ops, colors, viewmat, K, width, height, backend="vulkan")


def _gsplat_skip_reason():
    if not torch.cuda.is_available():
        return "needs CUDA: gsplat runs only on NVIDIA GPUs"
    try:
        import gsplat  # noqa: F401
    except Exception as error:
        return f"gsplat does not import: {error}"
    return None


@pytest.mark.skipif(_gsplat_skip_reason() is not None, reason=str(_gsplat_skip_reason()))
def test_torch_path_matches_gsplat_on_cuda():
    cpu = random_scene(n=3000, seed=5, channels=24)
    means, quats, scales, ops, colors, viewmat, K, width, height = (t.cuda() if torch.is_tensor(t) else t for t in cpu)
    image, alpha = R.rasterize(means, quats, scales, ops, colors, viewmat, K, width, height)
    image_g, alpha_g = R.rasterize_gsplat(means, quats, scales, ops, colors, viewmat, K, width, height)
    assert image_g.shape == image.shape and alpha_g.shape == alpha.shape
    assert (image - image_g).abs().max().item() < 1e-3
    assert (alpha - alpha_g).abs().max().item() < 1e-3
    auto, _ = R.render(means, quats, scales, ops, colors, viewmat, K, width, height)
    assert torch.equal(auto, image_g)


def test_gather_path_for_devices_without_sparse_kernels():
    means, quats, scales, ops, colors, viewmat, K, width, height = random_scene(seed=6, channels=24)
    W = R.composite_weights(means, quats, scales, ops, viewmat, K, width, height)
    pixels = torch.tensor([3, 3, 700, width * height - 1, 0])
    feats = colors.clone().requires_grad_(True)
    got = R._gather_rows(W, feats, pixels)  # the path MPS takes
    assert torch.allclose(got, R.apply_weights(W, colors, pixels), atol=1e-6)
    got.sum().backward()
    assert torch.allclose(feats.grad, dense(W)[pixels].sum(0)[:, None].expand_as(colors), atol=1e-6)
