"""The neck cut: a closed surface cut by a plane and capped flat."""
import numpy as np
import pytest
import trimesh

from model.data.neck import NeckCutError, cut_and_cap
from test_heads import _assert_closed_oriented_sphere, _volume

UP = np.array([0.0, 0.0, 1.0])


def test_a_sphere_cut_below_its_middle_stays_closed_and_gets_a_flat_outward_cap():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    top = int(np.argmax(sphere.vertices[:, 2]))
    cut = cut_and_cap(sphere.vertices, sphere.faces, (0, 0, -0.31), UP, top)
    _assert_closed_oriented_sphere(cut.faces)
    assert _volume(cut.vertices, cut.faces) > 0
    cap = cut.vertices[np.unique(cut.faces[cut.is_cap])]
    assert np.allclose(cap[:, 2], -0.31)
    # Its rim is the sphere's cross-section at that height (on the mesh's chords, so a little inside).
    rim_radii = np.sort(np.linalg.norm(cap[:, :2], axis=1))[1:]
    assert rim_radii == pytest.approx(np.sqrt(1 - 0.31 ** 2), rel=0.015)
    assert (cut.vertices[:, 2] >= -0.31 - 1e-12).all()
    kept = sphere.vertices[sphere.vertices[:, 2] >= -0.31]
    assert np.array_equal(cut.vertices[:len(kept)], kept)  # untouched, in order
    corners = cut.vertices[cut.faces[cut.is_cap]]
    cap_area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
    assert cap_area == pytest.approx(np.pi * (1 - 0.31 ** 2), rel=0.03)


def test_a_cut_in_two_loops_or_below_the_kept_vertex_is_refused():
    ring = trimesh.creation.torus(major_radius=1.0, minor_radius=0.3)
    standing = ring.vertices[:, [0, 2, 1]] * [1, 1, -1]  # its hole now looks along y
    top = int(np.argmax(standing[:, 2]))
    with pytest.raises(NeckCutError, match="2 loops"):
        cut_and_cap(standing, ring.faces, (0, 0, 0), UP, top)
    with pytest.raises(NeckCutError, match="below"):
        cut_and_cap(standing, ring.faces, (0, 0, 2), UP, top)


def test_a_cut_replayed_on_another_pose_keeps_its_faces_and_moves_with_the_surface():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    top = int(np.argmax(sphere.vertices[:, 2]))
    cut = cut_and_cap(sphere.vertices, sphere.faces, (0, 0, -0.31), UP, top)
    assert np.allclose(cut.replay(sphere.vertices), cut.vertices)
    stretched = sphere.vertices * [2.0, 1.0, 1.0] + [0.0, 0.0, 3.0]  # an affine pose: the cut follows exactly
    moved = cut.replay(stretched)
    assert np.allclose(moved, cut.vertices * [2.0, 1.0, 1.0] + [0.0, 0.0, 3.0])
    _assert_closed_oriented_sphere(cut.faces)
    assert _volume(moved, cut.faces) == pytest.approx(2.0 * _volume(cut.vertices, cut.faces))
