"""Localized editing: a head's regions changed through their local codes, nothing else.

A region is a set of parts (model.regions: name -> part indices). An edit is an array of local-code
offsets (K, L) added to the head's own local codes, zero outside the edited regions; HeadModel
re-regresses the keypoints of edited parts only, and blends the edited head's field into the unedited
one with `edit_weight`, so that the surface away from the region stays exactly where it was.

Each region's principal directions come from PCA over the training heads' local codes of its parts
(concatenated): slider i moves the region by `value` standard deviations along direction i.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import ImHeadError
from .frame import MM

# Sliders per region in the user interface; regions with fewer principal directions leave the rest at zero.
REGION_SLIDERS = 6
# An edit fades out across the borders of the edited parts' territory (where their keypoints stop being
# the nearest), over this many millimetres on either side. The truncated blend alone lets parts next to
# large, sparsely keypointed areas (jaw, neck) reach half the head; the fade keeps every edit to its
# region and the region's borders.
EDIT_FADE = 20 * MM


@dataclass(frozen=True)
class RegionBasis:
    parts: tuple      # part indices of the region
    mean: np.ndarray  # (P * L,) mean local code of the region's parts over the training heads
    axes: np.ndarray  # (C, P * L) principal directions, scaled by their standard deviation, largest first


def training_local_codes(model):
    """(H, K, L) local codes of the training heads."""
    local, _ = model.network.split_code(model.codes)
    return local


@lru_cache(maxsize=8)
def region_bases(model):
    """{region name: RegionBasis} for a HeadModel (computed once per loaded model)."""
    local = training_local_codes(model)
    bases = {}
    for name, parts in model.regions.items():
        codes = local[:, parts].reshape(len(local), -1).astype(np.float64)
        mean = codes.mean(0)
        _, singular, axes = np.linalg.svd(codes - mean, full_matrices=False)
        scale = singular / np.sqrt(max(len(codes) - 1, 1))
        keep = scale > 1e-6 * max(scale.max(initial=0.0), 1e-30)  # directions the training heads span
        bases[name] = RegionBasis(tuple(parts), mean.astype(np.float32),
                                  (axes[keep] * scale[keep, None]).astype(np.float32))
    return bases


def region_basis(model, region):
    bases = region_bases(model)
    if region not in bases:
        raise ImHeadError(f"this model has no region {region!r}; its regions are {', '.join(bases)}")
    return bases[region]


def no_edit(model):
    """The (K, L) offsets of an unedited head."""
    config = model.config
    return np.zeros((config.n_parts, config.local_dim), np.float32)


def slider_offsets(model, sliders):
    """(K, L) offsets of slider values {region: values}, values[i] in standard deviations along
    the region's i-th principal direction (directions the region lacks are ignored)."""
    offsets = no_edit(model)
    for region, values in sliders.items():
        basis = region_basis(model, region)
        values = np.asarray(values, np.float32)[: len(basis.axes)]
        offsets[list(basis.parts)] += (values @ basis.axes[: len(values)]).reshape(len(basis.parts), -1)
    return offsets


def set_region(offsets, model, region, region_codes, identity):
    """`offsets` with `region` set so that the edited head's local codes there are `region_codes`
    ((P, L) or (P * L,)); other regions unchanged."""
    basis = region_basis(model, region)
    parts = list(basis.parts)
    own = model.local_codes(identity)[parts]
    result = np.array(offsets, np.float32, copy=True)
    result[parts] = np.asarray(region_codes, np.float32).reshape(own.shape) - own
    return result


def clear_region(offsets, model, region):
    """`offsets` with `region` back to the head's own local codes."""
    result = np.array(offsets, np.float32, copy=True)
    result[list(region_basis(model, region).parts)] = 0.0
    return result


def random_region_codes(model, region, seed, scale=1.0):
    """Local codes (P, L) of a random plausible region: its training mean plus `scale` standard
    deviations along random combinations of all its principal directions."""
    basis = region_basis(model, region)
    coefficients = np.random.default_rng(seed).standard_normal(len(basis.axes)).astype(np.float32)
    return (basis.mean + scale * coefficients @ basis.axes).reshape(len(basis.parts), -1)


def edited_region_codes(model, region, identity, offsets):
    """Local codes (P, L) of `region` of an edited head (identity plus offsets): what "copy region"
    takes from another head."""
    parts = list(region_basis(model, region).parts)
    return model.local_codes(identity)[parts] + np.asarray(offsets, np.float32)[parts]


def surface_displacement(model, points, identity, offsets_before, offsets_after, n_parts=None):
    """How far (model units) an edit moves the surface near each of the given surface points (N, 3) of
    the head before the edit: |SDF_after - SDF_before|, the first-order normal displacement."""
    before = model.sdf(points, identity, n_parts=n_parts, local_offsets=offsets_before)
    after = model.sdf(points, identity, n_parts=n_parts, local_offsets=offsets_after)
    return np.abs(after - before)


def edit_weight(points, other_keypoints, edited_keypoints):
    """(N,) share of an edit applied at points (N, 3), from how much nearer the nearest edited keypoint is
    than the nearest other one: 1 beyond EDIT_FADE inside the edited territory, 0 beyond EDIT_FADE
    outside it, smoothstep between. other_keypoints: (K - E, 3) of the parts not edited; edited_keypoints:
    (E, 3) or more, the edited parts' keypoints before and after the edit."""
    if len(other_keypoints) == 0:
        return np.ones(len(points), np.float32)
    margin = _nearest_distance(points, other_keypoints) - _nearest_distance(points, edited_keypoints)
    t = np.clip((margin + np.float32(EDIT_FADE)) / np.float32(2 * EDIT_FADE), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _nearest_distance(points, keypoints):
    """(N,) distance from each point (N, 3) to the nearest of the keypoints (M, 3)."""
    return np.sqrt(np.square(points[:, None, :] - keypoints[None, :, :]).sum(-1).min(-1))


def edit_share(model, points, identity, offsets):
    """(N,) share of the edit `offsets` (K, L) applied at model-frame points (N, 3) of the head."""
    edited = np.abs(offsets).sum(-1) > 0
    before, after = model.keypoints(identity), model.keypoints(identity, offsets)
    return edit_weight(np.asarray(points, np.float32), before[~edited],
                       np.concatenate([before[edited], after[edited]]))
