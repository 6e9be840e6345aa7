"""The numpy runtime network against the torch network it reimplements (the reference), on the bundled
weights, the tiny trained model and every preset and ablation."""
from pathlib import Path

import numpy as np
import pytest
import torch

from model import ModelFileError
from model.runtime.config import ABLATIONS, PRESETS, make_config
from model.runtime.editing import slider_offsets
from model.runtime.head_model import HEAD_BOUNDS, HeadModel
from model.runtime.modelfile import load_model_file, state_dict_arrays
from model.runtime.numpy_network import NumpyNetwork, scaled_softplus
from model.training.network import ImHeadNetwork, denormals_flushed, network_from_model_file

BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "imhead.npz"
TOLERANCE = 1e-5
TEMPLATE = np.random.default_rng(0).uniform(-0.5, 0.5, (39, 3)).astype(np.float32)


def box_points(count, seed):
    """Points spread over the meshing box, where every query of meshing, editing and baking falls."""
    lo, hi = HEAD_BOUNDS
    return np.random.default_rng(seed).uniform(lo, hi, (count, 3)).astype(np.float32)


def both(header, arrays):
    return network_from_model_file(header, arrays), NumpyNetwork(header["config"], arrays)


def torch_sdf(net, points, codes, expression=None, local=None, keypoints=None):
    """The reference field: net(points, codes, expression), or with given local codes and keypoints."""
    with torch.no_grad(), denormals_flushed():
        points, codes = torch.from_numpy(points), torch.from_numpy(codes)
        if local is None:
            expression = None if expression is None else torch.from_numpy(expression)
            return net(points, codes, expression).numpy()
        _, extra = net.split_code(codes)
        return net.identity_sdf(points, torch.from_numpy(local), torch.from_numpy(keypoints), extra).numpy()


@pytest.fixture(scope="module")
def bundled():
    header, arrays = load_model_file(BUNDLED)
    return (header, arrays, *both(header, arrays))


def test_bundled_weights_signed_distance_and_keypoints_match_torch(bundled):
    _, arrays, reference, runtime = bundled
    codes = arrays["codes"][:2]
    points = np.stack([box_points(100_000, 0), box_points(100_000, 1)])
    np.testing.assert_allclose(runtime(points, codes), torch_sdf(reference, points, codes), rtol=0, atol=TOLERANCE)
    local, _ = runtime.split_code(codes)
    with torch.no_grad():
        expected_local, _ = reference.split_code(torch.from_numpy(codes))
        expected_keypoints = reference.keypoints(expected_local).numpy()
    np.testing.assert_allclose(local, expected_local.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(runtime.keypoints(local), expected_keypoints, rtol=0, atol=1e-6)


def test_bundled_weights_expressed_head_matches_torch(bundled):
    header, arrays, reference, runtime = bundled
    names = header["expression_names"]
    expression = np.zeros((1, len(names)), np.float32)
    expression[0, [names.index("jawOpen"), names.index("mouthSmile_L"), names.index("eyeBlink_R")]] = 0.8, 0.5, 1.0
    codes, points = arrays["codes"][3:4], box_points(100_000, 2)[None]
    warped = runtime.warp_to_canonical(points, codes, expression)
    with torch.no_grad(), denormals_flushed():
        expected_warp = reference.warp_to_canonical(*map(torch.from_numpy, (points, codes, expression))).numpy()
    assert np.abs(warped - points).max() > 1e-3  # the expression really moves points
    np.testing.assert_allclose(warped, expected_warp, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(runtime(points, codes, expression), torch_sdf(reference, points, codes, expression),
                               rtol=0, atol=TOLERANCE)


def test_bundled_weights_edited_head_matches_torch(bundled):
    """A region edit: the local codes plus slider offsets, the edited parts' keypoints re-regressed (what
    HeadModel evaluates inside an edit's fade)."""
    _, arrays, reference, runtime = bundled
    model = HeadModel.load(BUNDLED)
    identity = model.sample_identity(4, 1.0)
    offsets = slider_offsets(model, {"nose": [2.0, -1.0, 1.5], "jaw": [-2.0, 0.0, 1.0]})
    local = runtime.split_code(identity[None])[0] + offsets
    edited = np.abs(offsets).sum(-1) > 0
    keypoints = np.where(edited[:, None], runtime.keypoints(local)[0], model.keypoints(identity))[None]
    points = box_points(100_000, 3)[None]
    expected = torch_sdf(reference, points, identity[None], local=local, keypoints=keypoints)
    assert np.abs(expected - torch_sdf(reference, points, identity[None])).max() > 1e-3  # the edit changes it
    np.testing.assert_allclose(runtime.identity_sdf(points, local, keypoints), expected, rtol=0, atol=TOLERANCE)


def test_tiny_trained_model_matches_torch(tiny_model):
    header, arrays = load_model_file(tiny_model)
    reference, runtime = both(header, arrays)
    codes = arrays["codes"][:2]
    expression = np.random.default_rng(0).uniform(0, 1, (2, len(header["expression_names"]))).astype(np.float32)
    points = np.stack([box_points(20_000, 4), box_points(20_000, 5)])
    np.testing.assert_allclose(runtime(points, codes), torch_sdf(reference, points, codes), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(runtime(points, codes, expression), torch_sdf(reference, points, codes, expression),
                               rtol=0, atol=TOLERANCE)


def untrained(preset, ablation, **overrides):
    """An untrained network of one configuration, (config, torch network, NumpyNetwork), its warp made to
    move points so that the warp's parity (and gradient) means something."""
    config = make_config(preset, ablation, **overrides)
    torch.manual_seed(0)
    net = ImHeadNetwork(config, TEMPLATE)
    with torch.no_grad():
        net.warp[-1].weight.mul_(30.0)
    arrays = {**state_dict_arrays(net.state_dict()), "template_keypoints": TEMPLATE}
    return config, net.requires_grad_(False), NumpyNetwork(config, arrays)


# A canonical scale on its own and with the parts seeing x (the scale applies to their input either way).
SCALED_PARTS = [("tiny", "full", {"part_scale": 0.25}), ("tiny", "no_local_canonical", {"part_scale": 0.25})]
# The displacement-basis warp: the expression blends the warp's output, not its input.
BASIS_WARPS = [("tiny", "full", {"warp_basis": True}), ("compact", "no_fusion", {"warp_basis": True})]


@pytest.mark.parametrize("preset,ablation,overrides", [(p, "full", {}) for p in PRESETS] +
                         [(p, a, {}) for p in ("tiny", "compact") for a in ABLATIONS if a != "full"] + SCALED_PARTS
                         + BASIS_WARPS)
def test_every_preset_and_ablation_matches_torch(preset, ablation, overrides):
    """Untrained networks of every configuration: each latent mode, with and without FusionNet and the
    local canonical space, scaled parts, dense and truncated blends, fewer parts than the blend's, both
    forms of warp."""
    config, net, runtime = untrained(preset, ablation, **overrides)
    rng = np.random.default_rng(1)
    codes = (0.3 * rng.standard_normal((2, config.code_dim))).astype(np.float32)
    expression = rng.uniform(0, 1, (2, config.expression_dim)).astype(np.float32)
    points = np.stack([box_points(3000, 6), box_points(3000, 7)])
    np.testing.assert_allclose(runtime(points, codes, expression), torch_sdf(net, points, codes, expression),
                               rtol=0, atol=TOLERANCE)
    fewer = max(1, config.blend_parts - 2)
    with torch.no_grad(), denormals_flushed():
        expected = net(torch.from_numpy(points), torch.from_numpy(codes), n_parts=fewer).numpy()
    np.testing.assert_allclose(runtime(points, codes, n_parts=fewer), expected, rtol=0, atol=TOLERANCE)


def test_softplus_is_torchs_and_makes_no_denormals():
    x = np.concatenate([np.linspace(-3, 3, 200_001), [-1e4, -0.9, 0.2, 0.2000001, 1e4]]).astype(np.float32)
    t = x * np.float32(100)  # what the layers carry: beta times torch's pre-activation
    expected = 100 * torch.nn.functional.softplus(torch.from_numpy(x).double(), beta=100).numpy()
    result = scaled_softplus(t.copy())
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)
    beyond_threshold = t > 20  # where torch returns its input itself
    np.testing.assert_array_equal(result[beyond_threshold], t[beyond_threshold])
    # normal floats or zero (log(1 + z) of z below 6e-8), never a denormal: those are slow on x86
    assert np.all((result == 0) | (np.abs(result) >= np.finfo(np.float32).tiny))


def test_weights_that_do_not_match_the_configuration_are_refused(tiny_model):
    header, arrays = load_model_file(tiny_model)
    wrong = dict(arrays, **{"param/fusion.0.weight": arrays["param/fusion.0.weight"][:, 1:]})
    with pytest.raises(ModelFileError, match="fusion.0.weight has shape"):
        NumpyNetwork(header["config"], wrong)
    missing = {k: v for k, v in arrays.items() if k != "param/warp.0.bias"}
    with pytest.raises(ModelFileError, match="missing warp.0.bias"):
        NumpyNetwork(header["config"], missing)
