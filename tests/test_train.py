"""Feature training: each loss on hand-made inputs, and a short run that separates the objects of a scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.benchmark.synthetic import make_scene
from backend.errors import UserError
from backend.field.losses import contrastive_loss, global_feature_loss, neighbour_graph, norm_loss, spatial_loss
from backend.field.render import apply_weights, row_fragments
from backend.field.sampling import StepFragments
from backend.field.train import Cancelled, TrainConfig, train_features
from backend.formats.features import geometry_fingerprint, load_features, save_features
from backend.progress import Iterations, Precompute


def test_contrastive_loss_hand_values():
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert float(contrastive_loss(same, torch.tensor([4, 4]), tau=0.5)) == pytest.approx(0.0)
    # one pair, different masks, cosine 0.8: pushed by 0.8 - 0.5
    close = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    assert float(contrastive_loss(close, torch.tensor([1, 2]), tau=0.5)) == pytest.approx(0.3)
    # of the 6 ordered pairs: the 2 in the same mask at cosine 0.8 cost 1 - 0.8 each, the 2 different-mask
    # pairs at cosine 0.6 cost 0.6 - 0.5 each, and the orthogonal 2 nothing
    three = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    assert float(contrastive_loss(three, torch.tensor([1, 1, 2]), tau=0.5)) == pytest.approx((0.4 + 0.2) / 6)
    # unlabelled pixels (-1) are never pulled together, only pushed from labelled ones
    assert float(contrastive_loss(close, torch.tensor([-1, -1]), tau=0.5)) == pytest.approx(0.0)
    assert float(contrastive_loss(close, torch.tensor([-1, 3]), tau=0.5)) == pytest.approx(0.3)


def test_contrastive_anchor_estimate_is_unbiased():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(200, 6, generator=generator)
    labels = torch.randint(0, 5, (200,), generator=generator)
    exact = float(contrastive_loss(features, labels, tau=0.2))
    estimates = [
        float(contrastive_loss(features, labels, 0.2, torch.randperm(200, generator=generator)[:20]))
        for _ in range(200)
    ]
    assert np.mean(estimates) == pytest.approx(exact, rel=0.02)


def test_contrastive_loss_is_the_mean_over_all_pairs_of_pull_and_push_with_unlabelled_pixels_only_pushed():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(60, 12, generator=generator)
    labels = torch.randint(-1, 4, (60,), generator=generator)  # -1: no mask covers the pixel
    unit = torch.nn.functional.normalize(features, dim=1)
    similarity = unit @ unit.T
    pairs = ~torch.eye(60, dtype=torch.bool)
    same = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0) & pairs
    different = (labels[:, None] != labels[None, :]) & ((labels[:, None] >= 0) | (labels[None, :] >= 0))
    tau = 0.1  # a margin many pairs of random features pass: the negative term is far from zero
    pull, push = (1 - similarity)[same].sum(), torch.relu(similarity - tau)[different].sum()
    assert float(push) > 0.1 * float(pull)
    expected = (pull + push) / (60 * 59)
    assert float(contrastive_loss(features, labels, tau=tau)) == pytest.approx(float(expected), rel=1e-5)


def test_contrastive_gradient_matches_autograd_of_the_pairwise_sums():
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(3000, 12, generator=generator).requires_grad_()  # rows in several of the CPU's blocks
    labels = torch.randint(-1, 6, (3000,), generator=generator)
    anchors = torch.randperm(3000, generator=generator)[:300]

    def by_definition(values):
        unit = F.normalize(values, dim=1)
        sizes = torch.bincount(labels + 1).float()[1:]
        sums = torch.zeros(6, 12).index_add(0, labels.clamp(min=0), unit * (labels >= 0)[:, None].float())
        pull = (sizes**2).sum() - (sums**2).sum()
        different = labels[:, None] != labels[None, anchors]
        push = (torch.relu(unit @ unit[anchors].T - 0.3) * different).sum() * 3000 / 300
        return (pull + push) / (3000 * 2999)

    expected_loss = by_definition(features)
    (expected,) = torch.autograd.grad(expected_loss, features)
    loss = contrastive_loss(features, labels, 0.3, anchors)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(expected_loss.detach()), rel=1e-5)
    assert torch.allclose(features.grad, expected, atol=1e-9, rtol=1e-4)


def test_a_steps_pixels_and_their_gradient_are_the_weighted_sums_of_their_gaussians():
    generator = torch.Generator().manual_seed(5)
    dense = torch.rand(40, 30, generator=generator) * (torch.rand(40, 30, generator=generator) < 0.2)
    weights = dense.to_sparse_csr()  # (pixels, Gaussians), as a view's compositing weights
    features = torch.randn(30, 6, generator=generator)
    pixels = torch.tensor([7, 3, 3, 39, 0, 12])  # a pixel drawn twice, as the draws allow
    fragments = StepFragments.of(*row_fragments(weights, pixels), len(pixels))
    drawn = features[fragments.gaussians].requires_grad_()
    rendered = fragments.render(drawn)
    assert torch.allclose(rendered, apply_weights(weights, features, pixels), atol=1e-6)
    upstream = torch.randn(6, 6, generator=generator)
    (rendered * upstream).sum().backward()
    expected = dense[pixels].T @ upstream  # (30, 6): every Gaussian's gradient, zero for those not drawn
    assert torch.allclose(drawn.grad, expected[fragments.gaussians], atol=1e-6)
    assert not expected[torch.isin(torch.arange(30), fragments.gaussians, invert=True)].any()


def test_fine_negative_term_leaves_the_coarse_part_without_gradient():
    rendered = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.9, 0.1]], requires_grad=True)
    negative_view = torch.cat([rendered[:, :2].detach(), rendered[:, 2:]], 1)
    contrastive_loss(rendered * 1.0, torch.tensor([0, 1]), tau=0.75, negative_view=negative_view).backward()
    assert torch.all(rendered.grad[:, :2] == 0) and torch.any(rendered.grad[:, 2:] != 0)


def test_global_feature_loss_pulls_to_the_closest_centre_and_pushes_from_the_others():
    centers = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    on_centre = torch.tensor([[1.0, 0.0]])
    assert float(global_feature_loss(on_centre, centers, tau_global=0.9, tau=0.5)) == pytest.approx(0.0)
    near = torch.tensor([[0.96, 0.28]])  # cosine 0.96 to the first centre, 0.28 to the second
    assert float(global_feature_loss(near, centers, 0.9, 0.2)) == pytest.approx(0.04 + 0.08, abs=1e-6)
    far = torch.tensor([[0.6, 0.8]])  # closest similarity 0.8 < 0.9: not pulled at all
    assert float(global_feature_loss(far, centers, 0.9, 0.5)) == 0.0


def test_global_feature_loss_gradient_matches_autograd_of_its_definition():
    generator = torch.Generator().manual_seed(3)
    centers = F.normalize(torch.randn(6, 4, generator=generator), dim=1)
    # Gaussians near the centres (pulled) and random ones (mostly not), some above the margin to several centres
    near = centers[torch.arange(40) % 6] + 0.3 * torch.randn(40, 4, generator=generator)
    features = torch.cat([near, torch.randn(40, 4, generator=generator)]).requires_grad_()

    def by_definition(values):
        similarity = F.normalize(values, dim=1) @ centers.T
        best, closest = similarity.max(dim=1)
        active = best > 0.9
        others = similarity[active].scatter(1, closest[active, None], -1.0)
        return (1.0 - best[active]).mean() + torch.relu(others - 0.5).sum(dim=1).mean() / 5

    expected_loss = by_definition(features)
    (expected,) = torch.autograd.grad(expected_loss, features)
    loss = global_feature_loss(features, centers, 0.9, 0.5)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(expected_loss.detach()), rel=1e-5)
    assert torch.allclose(features.grad, expected, atol=1e-6)


def test_regularisers_hand_values():
    assert float(norm_loss(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))) == pytest.approx(0.5)
    # three Gaussians with features (0, 0), (1, 0), (0, 2), each the neighbour of the other two:
    # squared distances 1, 4 and 5, each pair counted from both ends
    features = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    graph = neighbour_graph(np.array([[1, 2], [0, 2], [0, 1]]))
    assert float(spatial_loss(features, graph)) == pytest.approx(2 * (1 + 4 + 5) / 6)
    # Gaussians 0 and 1 each other's only neighbour, 2 and 0 likewise: each pair counted from both ends
    graph = neighbour_graph(np.array([[1], [0], [0]]))
    assert float(spatial_loss(features, graph)) == pytest.approx((1 + 1 + 4) / 3)


def test_spatial_gradient_matches_the_plain_sum():
    torch.manual_seed(0)
    neighbours = torch.randint(0, 50, (50, 5))
    plain = torch.randn(50, 8, requires_grad=True)
    fast = plain.detach().clone().requires_grad_(True)
    ((plain[:, None, :] - plain[neighbours]) ** 2).sum(-1).mean().backward()
    spatial_loss(fast, neighbour_graph(neighbours.numpy())).backward()
    assert torch.allclose(fast.grad, plain.grad, atol=1e-5)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_short_training_separates_the_objects(trained_scene):
    scene, result = trained_scene["scene"], trained_scene["result"]
    features = result.field.features.astype(np.float32)
    assert features.shape == (6000, 24) and result.field.features.dtype == np.float16
    coarse = unit(features[:, :12])
    ids = scene.object_ids
    centres = unit(np.stack([coarse[ids == i].mean(0) for i in range(len(scene.object_names))]))
    for i, name in enumerate(scene.object_names):
        similarity = coarse @ centres[i]
        # within the object: above the threshold, but for the few Gaussians where it touches the ground
        # (every view's mask boundary blends them; the figure has about 120 Gaussians)
        assert np.mean(similarity[ids == i] > 0.75) > 0.85, name
        assert np.mean(similarity[ids != i] > 0.75) < 0.05, name  # every other object: below
    assert len(result.field.centers["coarse"]) >= 3
    assert set(result.seconds) == {"precompute", "iterations", "clustering"}


def test_training_is_reproducible_reports_progress_and_is_cancellable(trained_scene):
    scene, cameras, labels = (trained_scene[k] for k in ("scene", "cameras", "labels"))
    config = TrainConfig(iterations=5, pixels=500, use_gfl=False)
    events = []
    first = train_features(scene.splat, cameras, labels, config, progress=events.append).field.features
    assert [type(e) for e in events] == [Precompute, Iterations, Iterations] and events[-1].iteration == 5
    second = train_features(scene.splat, cameras, labels, config).field.features
    # equal up to the summation order of multi-threaded scatter-adds: one float16 step at most
    np.testing.assert_allclose(first.astype(np.float32), second.astype(np.float32), atol=1e-3)
    steps = []
    with pytest.raises(Cancelled):
        train_features(scene.splat, cameras, labels, config, should_stop=lambda: steps.append(1) or len(steps) > 2)


def test_features_belong_to_their_splat(tmp_path, trained_scene):
    scene = trained_scene["scene"]
    save_features(tmp_path / "f.npz", trained_scene["result"].field)
    assert load_features(tmp_path / "f.npz", scene.splat).fingerprint == geometry_fingerprint(scene.splat)
    other = make_scene(6000, seed=4).splat
    with pytest.raises(UserError, match=r"f\.npz: these features belong to another splat"):
        load_features(tmp_path / "f.npz", other)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match=r"bad\.npz: not a features file"):
        load_features(tmp_path / "bad.npz")


def test_a_mask_over_empty_pixels_does_not_poison_the_global_clusters():
    from backend.field.clustering import mask_features
    from backend.field.view_weights import View

    # pixels 0-1 see Gaussians 0 and 1; mask 1 covers pixels 2-3, where nothing is drawn
    weights = torch.sparse_csr_tensor(
        torch.tensor([0, 1, 2, 2, 2]), torch.tensor([0, 1], dtype=torch.int32), torch.tensor([1.0, 1.0]), size=(4, 3)
    )
    labels = torch.tensor([0, 0, 1, 1])
    features = torch.nn.functional.normalize(torch.randn(3, 24), dim=1)
    vectors = mask_features(
        [View(weights, labels, labels, torch.arange(4), None, torch.zeros(0, dtype=torch.long))],
        features,
        "coarse",
        True,
    )
    assert vectors.shape == (1, 12) and np.isfinite(vectors).all()


@pytest.mark.parametrize(
    "mask_balance", [TrainConfig.mask_balance, pytest.param(0.0, marks=pytest.mark.xfail(strict=True))]
)
def test_a_handle_whose_masks_miss_it_in_4_of_10_views_is_still_clicked_on_its_own(mask_balance):
    """SAM often returns no handle mask: here 4 views of 10 label the handle as body. Drawing pixels
    uniformly (mask_balance 0, xfail), that minority merges the two; drawing them per mask, it does not."""
    from backend.benchmark.synthetic import DEFAULT_PARTS, orbit_cameras, render_views
    from backend.field.click import DEFAULT_THRESHOLDS
    from backend.field.evaluate import GroundTruth, evaluate, summary

    scene = make_scene(3000, seed=0, parts=DEFAULT_PARTS[:3])  # ground, mug body, mug handle
    cameras = orbit_cameras(10, 128, 96, radius=3.5)
    views = render_views(scene, cameras)
    labels = []
    for index, (_, objects, parts) in enumerate(views):
        fine = parts.copy()
        if index in (1, 4, 6, 9):
            fine[fine == 2] = 1  # no handle mask: the body's covers it
        labels.append((objects, fine))
    config = TrainConfig(iterations=300, pixels=1024, use_gfl=False, mask_balance=mask_balance)
    features = train_features(scene.splat, cameras, labels, config).field.features
    truth = GroundTruth(
        {"coarse": [v[1] for v in views], "fine": [v[2] for v in views]},
        {"coarse": {0: "ground", 1: "mug"}, "fine": {0: "ground", 1: "mug/body", 2: "mug/handle"}},
        {"ground"},
    )
    thresholds = {level: [value] for level, value in DEFAULT_THRESHOLDS.items()}
    parts = summary(evaluate(scene.splat, cameras, truth, features, thresholds, 3, 0))["labels"]["fine"]
    assert parts["mug/handle"] > 70 and parts["mug/body"] > 70, parts


@pytest.mark.parametrize("negatives", [True, pytest.param(False, marks=pytest.mark.xfail(strict=True))])
def test_ground_that_no_mask_covers_stays_out_of_the_objects_selections(negatives):
    """SAM often leaves the floor to no mask. Its Gaussians, supervised by nothing but their neighbours
    and the object pixels that blend them in, took the objects' features (xfail); pushed away from
    the view's masks where they are drawn, they stay out of a click's selection."""
    from backend.benchmark.synthetic import DEFAULT_PARTS, orbit_cameras, render_views
    from backend.field.click import DEFAULT_THRESHOLDS
    from backend.field.evaluate import GroundTruth, evaluate, summary

    scene = make_scene(3000, seed=0, parts=DEFAULT_PARTS[:5])  # ground, mug, table
    cameras = orbit_cameras(8, 128, 96, radius=4.0)
    views = render_views(scene, cameras)
    labels = [(np.where(objects == 0, -1, objects), np.where(parts == 0, -1, parts)) for _, objects, parts in views]
    config = TrainConfig(iterations=300, pixels=1024, use_gfl=False, use_unlabelled_negatives=negatives)
    features = train_features(scene.splat, cameras, labels, config).field.features
    truth = GroundTruth(
        {"coarse": [v[1] for v in views], "fine": [v[2] for v in views]},
        {
            "coarse": {0: "ground", 1: "mug", 2: "table"},
            "fine": {0: "ground", 1: "mug/body", 2: "mug/handle", 3: "table/top", 4: "table/legs"},
        },
        {"ground"},
    )
    thresholds = {level: [value] for level, value in DEFAULT_THRESHOLDS.items()}
    scores = summary(evaluate(scene.splat, cameras, truth, features, thresholds, 3, 0))
    assert scores["floor_share"]["coarse"]["max"] < 5, scores["floor_share"]


def test_checkpoints_come_every_n_steps_and_carry_their_step(trained_scene, tmp_path):
    scene, cameras, labels = (trained_scene[k] for k in ("scene", "cameras", "labels"))
    fields = []
    config = TrainConfig(iterations=12, pixels=500, use_gfl=False)
    final = train_features(scene.splat, cameras, labels, config, checkpoint_every=5, checkpoint=fields.append).field
    assert [field.step for field in fields] == [5, 10] and final.step is None
    assert not np.array_equal(fields[0].features, final.features)
    save_features(tmp_path / "checkpoint.npz", fields[1], compress=False)
    assert load_features(tmp_path / "checkpoint.npz", scene.splat).step == 10
