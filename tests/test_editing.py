"""Localized editing on the Blender-free core, with the tiny model (locality also on the bundled one):
region directions, edits, locality."""
import numpy as np
import pytest

from model import HeadModel, ImHeadError
from model.runtime import editing
from model.runtime.frame import MM, model_to_mm

RESOLUTION = 48
LOCALITY_MM = 0.5


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return HeadModel.load(tiny_model)


@pytest.fixture(scope="module")
def head(tiny):
    """An identity and its surface vertices (model frame)."""
    identity = tiny.sample_identity(5, 1.0)
    return identity, tiny.extract_mesh(identity, resolution=RESOLUTION).vertices


def test_region_bases_are_principal_directions_of_the_training_local_codes(tiny):
    local = editing.training_local_codes(tiny)
    assert set(editing.region_bases(tiny)) == set(tiny.regions)
    for region, basis in editing.region_bases(tiny).items():
        codes = local[:, tiny.regions[region]].reshape(len(local), -1)
        np.testing.assert_allclose(basis.mean, codes.mean(0), atol=1e-6)
        assert 0 < len(basis.axes) <= len(codes) - 1  # the tiny model has 4 training heads
        # Scaled by their standard deviation: the training heads' variance along each axis.
        unit = basis.axes / np.linalg.norm(basis.axes, axis=1, keepdims=True)
        variance = ((codes - basis.mean) @ unit.T).var(0, ddof=1)
        np.testing.assert_allclose(variance, (basis.axes ** 2).sum(1), rtol=1e-3)
        np.testing.assert_allclose(unit @ unit.T, np.eye(len(unit)), atol=1e-5)


def test_sliders_change_only_their_regions_local_codes(tiny):
    offsets = editing.slider_offsets(tiny, {"nose": [2.0, -1.0], "ears": [0.5]})
    edited = np.flatnonzero(np.abs(offsets).sum(1))
    assert set(edited) == set(tiny.regions["nose"]) | set(tiny.regions["ears"])
    basis = editing.region_bases(tiny)["nose"]
    np.testing.assert_allclose(offsets[basis.parts,].ravel(), 2.0 * basis.axes[0] - basis.axes[1], atol=1e-6)
    with pytest.raises(ImHeadError, match="no region 'tail'"):
        editing.slider_offsets(tiny, {"tail": [1.0]})


def test_only_edited_parts_take_new_keypoints(tiny, head):
    identity, _ = head
    offsets = editing.slider_offsets(tiny, {"chin": [3.0, 3.0, 3.0]})
    before, after = tiny.keypoints(identity), tiny.keypoints(identity, offsets)
    chin = tiny.regions["chin"]
    others = [i for i in range(len(before)) if i not in chin]
    np.testing.assert_array_equal(after[others], before[others])
    assert np.abs(after[chin] - before[chin]).max() > 0
    np.testing.assert_array_equal(tiny.keypoints(identity, editing.no_edit(tiny)), before)


@pytest.mark.parametrize("region", ["nose", "eyes", "brows", "mouth", "lips", "chin", "jaw", "cheeks", "ears",
                                    "forehead", "cranium", "back_of_head", "neck"])
def test_a_strong_region_edit_moves_the_region_and_nothing_far_from_it(tiny, head, region):
    identity, vertices = head
    unedited = editing.no_edit(tiny)
    # Three standard deviations along every principal direction at once: far outside the training heads.
    codes = editing.random_region_codes(tiny, region, seed=11, scale=3.0)
    offsets = editing.set_region(unedited, tiny, region, codes, identity)
    moved = model_to_mm(editing.surface_displacement(tiny, vertices, identity, unedited, offsets))
    share = editing.edit_share(tiny, vertices, identity, offsets)
    far = share == 0
    assert 0.3 < far.mean() < 1  # a region is a minority of the head
    assert moved[far].max() < LOCALITY_MM
    assert moved[share > 0].max() > 0.02  # the region itself moves


# Beyond its fade a real edit of the bundled model leaves the meshed surface where it was: measured at
# 96^3 as each edited mesh vertex's distance to the nearest vertex of the unedited mesh, 0.015 mm (nose)
# and 0.044 mm (jaw) at most, where the regions themselves move by 4.9 and 13.5 mm.
BUNDLED_LOCALITY_MM = 0.1


@pytest.fixture(scope="module")
def bundled_head():
    from conftest import ROOT
    model = HeadModel.load(ROOT / "weights" / "imhead.npz")
    identity = model.sample_identity(5, 1.0)
    return model, identity, model.extract_mesh(identity, resolution=96)


@pytest.mark.parametrize("region", ["nose", "jaw"])
def test_a_bundled_model_edit_leaves_the_meshed_surface_beyond_its_fade(bundled_head, region):
    from scipy.spatial import cKDTree
    model, identity, unedited_mesh = bundled_head
    codes = editing.random_region_codes(model, region, seed=11, scale=3.0)
    offsets = editing.set_region(editing.no_edit(model), model, region, codes, identity)
    edited_mesh = model.extract_mesh(identity, resolution=96, local_offsets=offsets)
    moved = model_to_mm(cKDTree(unedited_mesh.vertices).query(edited_mesh.vertices)[0])
    beyond_fade = editing.edit_share(model, edited_mesh.vertices, identity, offsets) == 0
    assert 0.5 < beyond_fade.mean() < 1
    assert moved[beyond_fade].max() < BUNDLED_LOCALITY_MM
    assert moved[~beyond_fade].max() > 1.0  # the region itself moves


def test_an_edit_fades_out_smoothly_across_its_regions_border():
    other = np.array([[1.0, 0.0, 0.0]], np.float32)
    edited = np.array([[-1.0, 0.0, 0.0]], np.float32)
    x = np.linspace(-0.5, 0.5, 2001, dtype=np.float32)
    share = editing.edit_weight(np.stack([x, np.zeros_like(x), np.zeros_like(x)], -1), other, edited)
    assert share[0] == 1 and share[-1] == 0  # deep inside and deep outside the edited territory
    assert np.all(share[1:] <= share[:-1])  # fades monotonically across the border at x = 0
    np.testing.assert_allclose(float(share[1000]), 0.5, atol=1e-6)
    fading = (share > 0) & (share < 1)
    width_mm = model_to_mm(float(x[fading].max() - x[fading].min()))
    # The margin (distance to the other keypoint minus to the edited one) is -2x here.
    np.testing.assert_allclose(width_mm, editing.EDIT_FADE / MM, rtol=0.01)
    assert np.abs(np.diff(share)).max() < 2 * (x[1] - x[0]) / editing.EDIT_FADE  # no jump anywhere


def test_copy_region_takes_the_other_heads_codes_there_and_keeps_the_rest(tiny, head):
    identity, vertices = head
    source_identity = tiny.sample_identity(9, 1.5)
    source_offsets = editing.slider_offsets(tiny, {"nose": [1.0]})
    codes = editing.edited_region_codes(tiny, "nose", source_identity, source_offsets)
    offsets = editing.set_region(editing.no_edit(tiny), tiny, "nose", codes, identity)

    edited_local = tiny.local_codes(identity) + offsets
    source_local = tiny.local_codes(source_identity) + source_offsets
    nose = tiny.regions["nose"]
    np.testing.assert_allclose(edited_local[nose], source_local[nose], atol=1e-5)
    others = [i for i in range(len(edited_local)) if i not in nose]
    np.testing.assert_array_equal(offsets[others], 0.0)

    np.testing.assert_array_equal(editing.clear_region(offsets, tiny, "nose"), editing.no_edit(tiny))


def test_re_meshing_an_edited_head_computes_only_the_edited_share_anew(tiny_model):
    """extract_mesh(remember=True) keeps the unedited head's field on the lattice: the next edit of the
    same head reuses it outside the edit's fade, and gives the mesh a model without that memory gives."""
    model, fresh = HeadModel.load(tiny_model), HeadModel.load(tiny_model)
    counted = {"points": 0}
    network_sdf = model.network.identity_sdf

    def counting_sdf(points, *args, **kwargs):
        counted["points"] += points.shape[1]
        return network_sdf(points, *args, **kwargs)

    model.network.identity_sdf = counting_sdf
    identity = model.sample_identity(5, 1.0)
    model.extract_mesh(identity, resolution=RESOLUTION, remember=True)
    plain_points, counted["points"] = counted["points"], 0
    model.extract_mesh(identity, resolution=RESOLUTION, remember=True)
    assert counted["points"] == 0  # the same head again: all remembered
    model.extract_mesh(identity, resolution=RESOLUTION)
    assert counted["points"] == plain_points  # unless not asked to

    for region, seed in (("nose", 1), ("jaw", 2), ("nose", 3)):
        offsets = editing.set_region(editing.no_edit(model), model, region,
                                     editing.random_region_codes(model, region, seed, 2.0), identity)
        counted["points"] = 0
        edited = model.extract_mesh(identity, resolution=RESOLUTION, local_offsets=offsets, remember=True)
        assert 0 < counted["points"] < plain_points / 2
        expected = fresh.extract_mesh(identity, resolution=RESOLUTION, local_offsets=offsets)
        assert edited.vertices.shape == expected.vertices.shape
        np.testing.assert_allclose(edited.vertices, expected.vertices, atol=1e-6)
        np.testing.assert_array_equal(edited.faces, expected.faces)

    # Another head, another expression, another resolution: nothing is taken from the first head's memory.
    smiling = np.zeros(len(model.expression_names), np.float32)
    smiling[0] = 1.0
    for other in (dict(identity=model.sample_identity(6, 1.0)), dict(identity=identity, expression=smiling),
                  dict(identity=identity, resolution=RESOLUTION + 8)):
        arguments = {"resolution": RESOLUTION, **other}
        counted["points"] = 0
        mesh = model.extract_mesh(**arguments, remember=True)
        remembering, counted["points"] = counted["points"], 0
        model.extract_mesh(**arguments)
        assert remembering == counted["points"]
        expected = fresh.extract_mesh(**arguments)
        np.testing.assert_array_equal(mesh.faces, expected.faces)
        np.testing.assert_allclose(mesh.vertices, expected.vertices, atol=1e-6)
