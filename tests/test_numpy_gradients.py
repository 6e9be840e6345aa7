"""The numpy backward pass (numpy_gradients.sdf_and_vjp) against torch autograd on the reference network,
on the bundled weights and on untrained networks of every preset and ablation; and against finite
differences of the reference in float64, an independent check of the derivative itself."""
from pathlib import Path

import numpy as np
import pytest
import torch

from model.runtime.config import ABLATIONS, PRESETS
from model.runtime.head_model import HEAD_BOUNDS, HeadModel
import model.runtime.numpy_gradients as numpy_gradients
from model.runtime.numpy_gradients import sdf_and_vjp
from model.training.network import denormals_flushed, network_from_model_file
from test_numpy_network import BASIS_WARPS, SCALED_PARTS, untrained

BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "imhead.npz"
SDF_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4   # relative: of the difference's norm to torch's, and of its largest entry to torch's


def box_points(count, rng):
    lo, hi = HEAD_BOUNDS
    return rng.uniform(lo, hi, (count, 3)).astype(np.float32)


def torch_vjp(net, points, codes, expression, n_parts, upstream):
    """torch's signed distance and the gradients of sum(upstream * sdf): points, codes, expression."""
    inputs = [None if a is None else torch.from_numpy(a).requires_grad_(True) for a in (points, codes, expression)]
    with denormals_flushed():
        sdf = net(*inputs, n_parts=n_parts)
        (sdf * torch.from_numpy(upstream)).sum().backward()
    return sdf.detach().numpy(), [None if a is None else a.grad.numpy() for a in inputs]


def assert_matches_torch(runtime, net, points, codes, expression=None, n_parts=None, seed=0):
    upstream = np.random.default_rng(seed).standard_normal(points.shape[:2]).astype(np.float32)
    sdf, backward = sdf_and_vjp(runtime, points, codes, expression, n_parts)
    gradients = backward(upstream)
    expected_sdf, expected = torch_vjp(net, points, codes, expression, n_parts, upstream)
    assert sdf.dtype == np.float32 and sdf.shape == points.shape[:2]
    np.testing.assert_allclose(sdf, expected_sdf, rtol=0, atol=SDF_TOLERANCE)
    # The runtime's own values (BLAS rounds a matmul's rows differently in blocks of other sizes)
    np.testing.assert_allclose(sdf, runtime(points, codes, expression, n_parts), rtol=0, atol=1e-6)
    for name, gradient, reference in zip(("points", "codes", "expression"), gradients, expected):
        if reference is None:
            assert gradient is None
            continue
        assert gradient.dtype == np.float32 and gradient.shape == reference.shape, name
        assert np.abs(reference).max() > 0, name  # a gradient that is there
        difference = gradient - reference
        relative = np.linalg.norm(difference) / np.linalg.norm(reference)
        largest = np.abs(difference).max() / np.abs(reference).max()
        assert relative < GRADIENT_TOLERANCE and largest < GRADIENT_TOLERANCE, (name, relative, largest)
    return gradients


@pytest.fixture(scope="module")
def bundled():
    head_model = HeadModel.load(BUNDLED)
    net = network_from_model_file(head_model.header, head_model.arrays).requires_grad_(False)
    identity = head_model.sample_identity(5)
    rng = np.random.default_rng(0)
    # Near the surface, where a fit queries (a coarse mesh's vertices, a few mm off), and anywhere in the box.
    vertices = head_model.extract_mesh(identity, resolution=40).vertices
    near = vertices[rng.choice(len(vertices), 1500, replace=False)] + rng.normal(0, 0.01, (1500, 3))
    points = np.concatenate([near, box_points(500, rng)]).astype(np.float32)[None]
    return head_model, net, identity[None].astype(np.float32), points


@pytest.mark.parametrize("with_expression", [False, True])
@pytest.mark.parametrize("n_parts", [None, 3])
def test_bundled_weights_gradients_match_torch(bundled, with_expression, n_parts):
    head_model, net, codes, points = bundled
    expression = None
    if with_expression:
        expression = np.random.default_rng(1).uniform(0, 1, (1, head_model.config.expression_dim)).astype(np.float32)
    assert_matches_torch(head_model.network, net, points, codes, expression, n_parts)


@pytest.mark.parametrize("preset,ablation,overrides", [(p, a, {}) for p in PRESETS for a in ABLATIONS] + SCALED_PARTS
                         + BASIS_WARPS)
def test_every_preset_and_ablation_gradients_match_torch(preset, ablation, overrides):
    """Each latent mode, with and without FusionNet and the local canonical space, scaled parts, dense and
    truncated blends, fewer parts than the blend's, both forms of warp; two heads at once."""
    config, net, runtime = untrained(preset, ablation, **overrides)
    rng = np.random.default_rng(1)
    count = 60 if preset == "paper" else 400
    codes = (0.3 * rng.standard_normal((2, config.code_dim))).astype(np.float32)
    expression = rng.uniform(0, 1, (2, config.expression_dim)).astype(np.float32)
    points = np.stack([box_points(count, rng), box_points(count, rng)])
    assert_matches_torch(runtime, net, points, codes, expression, seed=2)
    assert_matches_torch(runtime, net, points, codes, seed=3)
    assert_matches_torch(runtime, net, points, codes, expression, n_parts=3, seed=4)


def test_chunked_and_recomputed_tapes_give_the_same_gradients(monkeypatch):
    """Many chunks, most of them run forward again inside backward (what 20,000 points of the bundled
    model do): the same values and gradients as one chunk."""
    config, net, runtime = untrained("tiny", "full")
    rng = np.random.default_rng(2)
    codes = (0.3 * rng.standard_normal((2, config.code_dim))).astype(np.float32)
    expression = rng.uniform(0, 1, (2, config.expression_dim)).astype(np.float32)
    points = np.stack([box_points(1000, rng), box_points(1000, rng)])
    upstream = rng.standard_normal((2, 1000)).astype(np.float32)
    sdf, backward = sdf_and_vjp(runtime, points, codes, expression)
    whole = backward(upstream)
    with pytest.raises(RuntimeError, match="called once"):
        backward(upstream)
    monkeypatch.setattr(numpy_gradients, "CHUNK_PAIRS", 4 * 64)
    monkeypatch.setattr(numpy_gradients, "KEPT_PAIRS", 4 * 64 * 2 * 3)
    chunked_sdf, chunked_backward = sdf_and_vjp(runtime, points, codes, expression)
    np.testing.assert_allclose(chunked_sdf, sdf, rtol=0, atol=1e-6)
    # Chunks sum float32 products in another order, by how much depends on the CPU's BLAS kernels.
    for chunked, expected in zip(chunked_backward(upstream), whole):
        np.testing.assert_allclose(chunked, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_gradients_are_the_derivative_of_the_float64_field(bundled):
    """Independent of autograd: the directional derivative along a random direction in (points, code,
    expression), against central differences of the reference network in float64."""
    head_model, net, codes, points = bundled
    net64 = network_from_model_file(head_model.header, head_model.arrays).double().requires_grad_(False)
    rng = np.random.default_rng(3)
    points = points[:, rng.choice(points.shape[1], 12, replace=False)]
    expression = rng.uniform(0, 1, (1, head_model.config.expression_dim)).astype(np.float32)
    upstream = rng.standard_normal(points.shape[:2]).astype(np.float32)
    directions = [rng.standard_normal(a.shape) for a in (points, codes, expression)]
    for n_parts in (None, 3):
        _, backward = sdf_and_vjp(head_model.network, points, codes, expression, n_parts)
        predicted = sum(float((g.astype(np.float64) * d).sum()) for g, d in zip(backward(upstream), directions))

        def objective(step):
            moved = [torch.from_numpy(a.astype(np.float64) + step * d) for a, d in zip((points, codes, expression),
                                                                                    directions)]
            with torch.no_grad():
                return float((net64(*moved, n_parts=n_parts) * torch.from_numpy(upstream.astype(np.float64))).sum())

        step = 1e-6
        numeric = (objective(step) - objective(-step)) / (2 * step)
        assert abs(predicted) > 1e-3
        assert abs(predicted - numeric) < 1e-3 * abs(numeric), (n_parts, predicted, numeric)
