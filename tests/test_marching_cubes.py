"""numpy marching cubes: a generated case table without cracks, and meshes that are closed, outward,
and where scikit-image (the reference it replaces) puts them."""
import itertools

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes as skimage_marching_cubes

from model.runtime.marching_cubes import CASE_STARTS, TRIANGLE_EDGES, marching_cubes
from model.runtime.meshing import SurfaceMesh, connected_components

CORNERS = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)])
# Edge 4 * axis + m runs along axis from the corner whose other two offsets are m's two bits, as in
# the module; rebuilt here from that definition, not read from it.
EDGES = [(axis, start, start | (4 >> axis)) for axis in range(3) for start in range(8) if not CORNERS[start, axis]]


def case_triangles(case):
    return [tuple(t) for t in TRIANGLE_EDGES[CASE_STARTS[case]:CASE_STARTS[case + 1]]]


def directed_sides(triangles):
    return [(t[k], t[(k + 1) % 3]) for t in triangles for k in range(3)]


def loop_sides(case):
    """The directed sides of a case's triangles not walked back by another of its triangles: the loops
    its surface draws on the cube's faces."""
    sides = directed_sides(case_triangles(case))
    return {s for s in sides if s[::-1] not in sides}


def edge_faces(edge):
    """The cube faces, as (axis, side), an edge lies on."""
    axis, start, _ = EDGES[edge]
    return {(other, CORNERS[start, other]) for other in range(3) if other != axis}


def crossed_edges(case):
    return {e for e, (_, a, b) in enumerate(EDGES) if (case >> a & 1) != (case >> b & 1)}


def test_every_case_is_closed_loops_on_the_cube_triangulated_with_one_winding():
    for case in range(256):
        triangles = case_triangles(case)
        sides = directed_sides(triangles)
        assert len(set(sides)) == len(sides), case  # each side walked once each way at most: one winding
        loop = loop_sides(case)
        starts, ends = [a for a, _ in loop], [b for _, b in loop]
        # Closed loops through every crossed edge once, each side on one face of the cube.
        assert sorted(starts) == sorted(ends) == sorted(crossed_edges(case)), case
        assert all(edge_faces(a) & edge_faces(b) for a, b in loop), case
        # Inside the loops, diagonals join edges on no common face (the neighbour could draw those too).
        assert all(not edge_faces(a) & edge_faces(b) for a, b in set(sides) - loop), case
        assert len({e for t in triangles for e in t}) == len(crossed_edges(case))


def test_triangle_counts_are_those_of_loops_fanned_out():
    counts = np.diff(CASE_STARTS)
    assert counts[0] == counts[255] == 0
    for case in range(1, 255):
        # A loop of n edges takes n - 2 triangles, so a case takes (crossed edges) - 2 * (loops).
        following = dict(loop_sides(case))
        loops, seen = 0, set()
        for start in following:
            if start not in seen:
                loops += 1
                edge = start
                while edge not in seen:
                    seen.add(edge)
                    edge = following[edge]
        assert counts[case] == len(crossed_edges(case)) - 2 * loops, case
    assert {counts[1 << c] for c in range(8)} == {1}
    assert 1 <= counts[1:255].min() and counts.max() <= 5


def face_signs(case, axis, side):
    """The signs of one face's corners, keyed by the corner's offsets along the other two axes."""
    return {tuple(np.delete(CORNERS[c], axis)): case >> c & 1 for c in range(8) if CORNERS[c, axis] == side}


def face_segments(case, axis, side):
    """A case's loop sides on one face, each as the pair of lattice edges it joins, named by the edge's
    axis and the start's offsets along the other two axes (the same name in both cells of the face)."""
    def name(edge):
        edge_axis, start, _ = EDGES[edge]
        return edge_axis, tuple(np.delete(CORNERS[start], axis))
    return {(name(a), name(b)) for a, b in loop_sides(case) if (axis, side) in edge_faces(a) & edge_faces(b)}


def test_two_cells_sharing_a_face_cut_it_alike_and_walk_it_opposite_ways():
    for axis in range(3):
        far_side = [c for c in range(8) if CORNERS[c, axis] == 1]
        for lower_case in range(256):
            signs = face_signs(lower_case, axis, 1)
            segments = face_segments(lower_case, axis, 1)
            # Every upper cell with the same four corners on that face: the other four corners vary.
            near_side = [c for c in range(8) if CORNERS[c, axis] == 0]
            for rest in range(16):
                upper_case = sum(signs[tuple(np.delete(CORNERS[c], axis))] << c for c in near_side)
                upper_case |= sum(((rest >> k) & 1) << c for k, c in enumerate(far_side))
                assert face_segments(upper_case, axis, 0) == {(b, a) for a, b in segments}, (axis, lower_case)


def has_ambiguous_face(case):
    """Whether the corners of one of the cube's faces alternate in sign around it."""
    for axis, side in itertools.product(range(3), (0, 1)):
        signs = face_signs(case, axis, side)
        if signs[0, 0] == signs[1, 1] != signs[0, 1] == signs[1, 0]:
            return True
    return False


def test_complementary_cases_draw_the_same_loops_reversed_unless_a_face_is_ambiguous():
    # An ambiguous face joins its negative corners, so in the complement it joins the other two.
    assert sum(has_ambiguous_face(case) for case in range(256)) == 120
    for case in range(256):
        reversed_loops = {(b, a) for a, b in loop_sides(255 - case)}
        assert (loop_sides(case) == reversed_loops) != has_ambiguous_face(case), case


# Meshes.

def lattice(n):
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64)] * 3, indexing="ij"), axis=-1)


def sphere(n, centre, radius):
    return (np.linalg.norm(lattice(n) - centre, axis=-1) - radius).astype(np.float32)


def torus(n, centre, major, minor):
    p = lattice(n) - centre
    ring = np.linalg.norm(p[..., :2], axis=-1) - major
    return (np.sqrt(ring ** 2 + p[..., 2] ** 2) - minor).astype(np.float32)


def gaussian_blobs(n, seed, count=12, widths=(2.5, 5.0)):
    """0.5 minus a sum of Gaussians: negative inside blobs that merge and part, with saddles."""
    rng = np.random.default_rng(seed)
    points = lattice(n)
    field = np.full((n, n, n), 0.5)
    for centre, width in zip(rng.uniform(6, n - 7, (count, 3)), rng.uniform(*widths, count)):
        field -= np.exp(-np.sum((points - centre) ** 2, axis=-1) / (2 * width * width))
    return field.astype(np.float32)


def noise(shape, seed):
    """Uniform noise in -1..1 inside a positive border: every other face ambiguous, and closed."""
    values = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
    return np.pad(values, 1, constant_values=1.0)


SMOOTH_FIELDS = {
    "sphere": sphere(32, (15.3, 16.1, 14.7), 10.2),
    "torus": torus(40, (19.6, 20.3, 19.2), 11.0, 4.3),
    "two spheres 1.6 voxels apart": np.minimum(sphere(36, (11.2, 17.4, 17.9), 7.1), sphere(36, (24.9, 17.7, 18.2), 5.0)),
    **{f"gaussian blobs {seed}": gaussian_blobs(40, seed) for seed in range(3)},
}


def undirected_counts(faces):
    sides = np.sort(np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2), axis=1)
    return np.unique(sides, axis=0, return_counts=True)[1]


def closed_and_one_winding(faces):
    directed = np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)
    return bool(np.all(undirected_counts(faces) == 2)) and len(np.unique(directed, axis=0)) == len(directed)


def signed_volume(vertices, faces):
    corners = vertices[faces]
    return np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0


def area(vertices, faces):
    corners = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()


def scipy_pieces(vertices, faces):
    rows, cols = faces.reshape(-1), np.roll(faces, 1, axis=1).reshape(-1)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(vertices),) * 2)
    labels = scipy_components(graph, directed=False)[1]
    return len(np.unique(labels[np.unique(faces)]))


def pieces(vertices, faces):
    return connected_components(SurfaceMesh(vertices, faces, np.zeros_like(vertices)))


@pytest.mark.parametrize("name", list(SMOOTH_FIELDS))
def test_smooth_fields_give_closed_outward_meshes_where_skimage_puts_them(name):
    values = SMOOTH_FIELDS[name]
    vertices, faces = marching_cubes(values)
    reference, reference_faces, _, _ = skimage_marching_cubes(values, 0.0, gradient_direction="descent")
    reference = reference.astype(np.float64)

    assert vertices.dtype == np.float64 and faces.dtype == np.int32
    assert closed_and_one_winding(faces)
    assert signed_volume(vertices, faces) > 0
    # Every vertex on a lattice edge, one per crossed edge, at skimage's vertex there.
    on_edge = np.sum(reference == np.round(reference), axis=1) >= 2  # skimage may add some inside cells
    assert cKDTree(reference).query(vertices)[0].max() < 1e-5
    assert cKDTree(vertices).query(reference[on_edge])[0].max() < 1e-5
    assert len(vertices) == on_edge.sum()
    # The triangulations inside cells differ (so do the ambiguous ones): the areas by up to 2e-4, the
    # volumes by up to 7e-4, where both are 3e-3 and 1e-2 from the exact torus's.
    assert area(vertices, faces) == pytest.approx(area(reference, reference_faces), rel=5e-4)
    assert signed_volume(vertices, faces) == pytest.approx(signed_volume(reference, reference_faces), rel=1.5e-3)
    assert pieces(vertices, faces) == scipy_pieces(vertices, faces) == scipy_pieces(reference, reference_faces)


def test_sphere_torus_and_two_spheres_have_the_topology_of_their_shapes():
    for name, expected_pieces, euler in (("sphere", 1, 2), ("torus", 1, 0), ("two spheres 1.6 voxels apart", 2, 4)):
        vertices, faces = marching_cubes(SMOOTH_FIELDS[name])
        edges = len(faces) * 3 // 2
        assert pieces(vertices, faces) == expected_pieces, name
        assert len(vertices) - edges + len(faces) == euler, name


def test_uniform_noise_is_watertight_with_many_ambiguous_faces():
    ambiguous_faces = 0
    for seed in range(40):
        values = noise((9, 10, 11), seed)
        vertices, faces = marching_cubes(values)
        assert closed_and_one_winding(faces), seed
        assert signed_volume(vertices, faces) > 0, seed
        assert pieces(vertices, faces) == scipy_pieces(vertices, faces), seed
        reference = skimage_marching_cubes(values, 0.0)[0]
        on_edge = reference[np.sum(reference == np.round(reference), axis=1) >= 2]
        assert len(vertices) == len(on_edge) and cKDTree(on_edge).query(vertices)[0].max() < 1e-5, seed
        positive = values > 0
        for axis in range(3):
            square = np.moveaxis(positive, axis, 0)
            a, b, c, d = square[:, :-1, :-1], square[:, 1:, :-1], square[:, 1:, 1:], square[:, :-1, 1:]
            ambiguous_faces += int(np.sum((a == c) & (b == d) & (a != b)))
    assert ambiguous_faces > 10_000


def test_noise_cut_by_the_lattice_border_is_closed_inside_and_open_only_there():
    values = np.random.default_rng(7).uniform(-1, 1, (12, 9, 10)).astype(np.float32)
    vertices, faces = marching_cubes(values)
    counts = undirected_counts(faces)
    assert set(counts) == {1, 2}
    sides = np.sort(np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2), axis=1)
    unique, count = np.unique(sides, axis=0, return_counts=True)
    border = vertices[unique[count == 1]]  # (sides, 2 ends, 3)
    top = np.array(values.shape) - 1
    on_one_border_plane = np.any(((border == 0) | (border == top)).all(axis=1), axis=1)
    assert on_one_border_plane.all()


def test_a_mask_visits_only_cells_with_eight_marked_corners():
    values = gaussian_blobs(40, 0)
    box = (slice(5, 31), slice(8, 36), slice(3, 29))
    mask = np.zeros(values.shape, dtype=bool)
    mask[box] = True
    vertices, faces = marching_cubes(values, mask)
    inside, inside_faces = marching_cubes(values[box])
    np.testing.assert_array_equal(faces, inside_faces)
    np.testing.assert_allclose(vertices, inside + [s.start for s in box], atol=1e-12)

    # A mask of every corner of every crossed cell gives what no mask gives; so does marking all.
    full, full_faces = marching_cubes(values)
    positive = values > 0
    for mask in (np.ones(values.shape, dtype=bool), crossed_cell_corners(positive)):
        masked, masked_faces = marching_cubes(values, mask)
        np.testing.assert_array_equal(masked_faces, full_faces)
        np.testing.assert_array_equal(masked, full)


def test_a_mask_of_another_shape_is_refused():
    with pytest.raises(ValueError, match="mask has shape"):
        marching_cubes(SMOOTH_FIELDS["sphere"], np.ones((4, 4, 4), dtype=bool))


def crossed_cell_corners(positive):
    cells = np.lib.stride_tricks.sliding_window_view(positive, (2, 2, 2))
    crossed = cells.any(axis=(3, 4, 5)) & ~cells.all(axis=(3, 4, 5))
    corners = np.zeros(positive.shape, dtype=bool)
    for i, j, k in itertools.product((0, 1), repeat=3):
        corners[i:i + crossed.shape[0], j:j + crossed.shape[1], k:k + crossed.shape[2]] |= crossed
    return corners


def test_no_crossing_and_lattices_without_cells_give_empty_meshes():
    for values in (np.ones((5, 6, 7), np.float32), -np.ones((4, 4, 4), np.float32), np.zeros((1, 5, 5), np.float32)):
        vertices, faces = marching_cubes(values)
        assert vertices.shape == (0, 3) and faces.shape == (0, 3) and faces.dtype == np.int32


def test_float64_and_strided_lattices_give_the_float32_contiguous_mesh():
    values = SMOOTH_FIELDS["torus"]
    vertices, faces = marching_cubes(values)
    for other in (values.astype(np.float64), np.asfortranarray(values)):
        other_vertices, other_faces = marching_cubes(other)
        np.testing.assert_array_equal(other_faces, faces)
        np.testing.assert_allclose(other_vertices, vertices, atol=1e-6)


def test_pieces_are_scipys_whatever_the_order_of_the_vertices():
    vertices, faces = marching_cubes(noise((14, 12, 13), 3) + 0.7)  # 15 % inside: many small pieces
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(vertices))
        renamed = np.argsort(order).astype(np.int32)[faces]
        assert pieces(vertices[order], renamed) == scipy_pieces(vertices[order], renamed) > 20
