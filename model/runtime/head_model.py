"""A trained imHead model, loaded from its file: the API the rest of the project calls.

Identities are codes of size config.code_dim; expressions are coefficient vectors over
expression_names (0..1 each). Points are in the model frame (see frame.py). Every query runs on the
numpy runtime (numpy_network.NumpyNetwork), in float32 batches side by side (parallel.worker_map).
A head's parameters and edits as the add-on keeps them: head_state.py; the command line: `python -m imhead`.
"""
from functools import cached_property

import numpy as np

from . import parallel
from .editing import edit_weight
from .errors import ImHeadError, ModelFileError
from .meshing import Grid, LatticeMemo, extract_surface
from .modelfile import load_model_file
from .numpy_network import NumpyNetwork

# The box every head (any identity within 3 standard deviations, any expression) fits in, model frame.
HEAD_BOUNDS = (np.array([-0.78, -0.74, -0.98], np.float32), np.array([0.78, 0.74, 0.98], np.float32))

_BOX_CENTRE = (HEAD_BOUNDS[0] + HEAD_BOUNDS[1]) / 2
# A voxel-fraction inside the bounds, so the lattice's outermost points are strictly outside the box.
_BOX_HALF = (HEAD_BOUNDS[1] - HEAD_BOUNDS[0]) / 2 - np.float32(1e-3)


def box_sdf(points):
    """Exact signed distance to the meshing box (negative inside)."""
    q = np.abs(points - _BOX_CENTRE) - _BOX_HALF
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


class HeadModel:
    def __init__(self, header, arrays, path=None):
        self.path = path
        self.header = header
        self.arrays = arrays  # the model file's arrays: torch's reference network is built from them too
        self.config = header["config"]
        self.hash = header["hash"]
        self.expression_names = list(header["expression_names"])
        self.keypoint_names = [k["name"] for k in header["keypoints"]]
        part_regions = [k["region"] for k in header["keypoints"]]
        self.regions = {name: [i for i, r in enumerate(part_regions) if r == name] for name in header["regions"]}
        self.training = header.get("training", {})
        self.codes = arrays["codes"]
        try:
            self.network = NumpyNetwork(self.config, arrays)
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {exc}") from exc
        self._memo = None  # (key, LatticeMemo): see _unedited_memo

    @classmethod
    def load(cls, path):
        header, arrays = load_model_file(path)
        return cls(header, arrays, path)

    # --- identities -------------------------------------------------------------------------------
    @cached_property
    def code_statistics(self):
        """Mean code and principal axes (rows, scaled by their standard deviation) of the training codes."""
        mean = self.codes.mean(0)
        _, singular, axes = np.linalg.svd(self.codes - mean, full_matrices=False)
        scale = singular / np.sqrt(max(len(self.codes) - 1, 1))
        return mean.astype(np.float32), (axes * scale[:, None]).astype(np.float32)

    def mean_identity(self):
        return self.code_statistics[0].copy()

    def sample_identity(self, seed, scale=1.0):
        """A random plausible identity: the mean plus `scale` standard deviations along random principal axes."""
        mean, axes = self.code_statistics
        coefficients = np.random.default_rng(seed).standard_normal(len(axes)).astype(np.float32)
        return mean + scale * coefficients @ axes

    def _code(self, identity):
        """The identity as a (1, code_dim) float32 array."""
        code = np.asarray(identity, np.float32).reshape(1, -1)
        if code.shape[1] != self.config.code_dim:
            raise ImHeadError(f"identity code has {code.shape[1]} values, this model needs {self.config.code_dim}")
        return code

    def _expression(self, expression):
        """The expression as a (1, n_expressions) float32 array; None for none or the neutral one."""
        if expression is None:
            return None
        values = np.asarray(expression, np.float32).reshape(1, -1)
        if values.shape[1] != len(self.expression_names):
            raise ImHeadError(f"expression has {values.shape[1]} values, this model has "
                              f"{len(self.expression_names)} expressions")
        return values if np.abs(values).sum() > 0 else None

    # --- queries ----------------------------------------------------------------------------------
    def _unedited(self, code):
        """Local codes (1, K, L), the extra code and keypoints (1, K, 3) of the head of `code`."""
        local, extra = self.network.split_code(code)
        return local, extra, self.network.keypoints(local)

    def _edited(self, local, keypoints, local_offsets):
        """Local codes with `local_offsets` (K, L) added, their keypoints, and which parts are edited (K,).

        The keypoint regressor reads all local codes, so re-regressing every keypoint after a region edit
        would move parts far from the region. Only the edited parts (rows of the offsets that are not zero)
        take the re-regressed keypoints; the others keep the unedited head's.
        """
        if local_offsets is None:
            return local, keypoints, np.zeros(local.shape[1], dtype=bool)
        offsets = np.asarray(local_offsets, np.float32)
        if offsets.shape != local.shape[1:]:
            raise ImHeadError(f"local offsets have shape {tuple(offsets.shape)}, this model needs "
                              f"{tuple(local.shape[1:])}")
        edited = np.abs(offsets).sum(-1) > 0
        local = local + offsets
        return local, np.where(edited[None, :, None], self.network.keypoints(local), keypoints), edited

    def sdf_function(self, identity, expression=None, n_parts=None, local_offsets=None, memo=None):
        """A callable (N, 3) float32 array -> (N,) signed distance, for one head; no batching inside, safe
        to call from several threads at once.

        local_offsets: optional (K, L) additions to the head's local codes (region edits, see editing.py).
        The edited head's field is blended into the unedited one by editing.edit_weight, so each point is
        evaluated once, or twice where an edit fades out.
        memo: a LatticeMemo of the unedited head's field (this identity, expression and n_parts), for
        points on its lattice only: the unedited field is looked up there, and what is computed is added.
        """
        code = self._code(identity)
        expression = self._expression(expression)
        net = self.network
        local, extra, keypoints = self._unedited(code)
        edited_local, edited_keypoints, edited = self._edited(local, keypoints, local_offsets)
        edit_centres = np.concatenate([keypoints[0, edited], edited_keypoints[0, edited]])

        def identity_sdf(points, local, keypoints):
            if len(points) == 0:
                return np.zeros(0, np.float32)
            return net.identity_sdf(points[None], local, keypoints, extra, n_parts)[0]

        def unedited(points, slots):
            if slots is None:
                return identity_sdf(points, local, keypoints)
            values = memo.recall(slots)
            missing = np.isnan(values)
            values[missing] = identity_sdf(points[missing], local, keypoints)
            memo.remember(slots[missing], values[missing])
            return values

        def sdf(points):
            points = np.asarray(points, np.float32)
            slots = None if memo is None else memo.slots(points)
            if expression is not None:
                points = net.warp_to_canonical(points[None], code, expression)[0]
            if not edited.any():
                return unedited(points, slots)
            weight = edit_weight(points, keypoints[0, ~edited], edit_centres)
            values = np.zeros(len(points), np.float32)
            plain, touched = weight < 1, weight > 0
            values[plain] = unedited(points[plain], None if slots is None else slots[plain])
            values[touched] += weight[touched] * (identity_sdf(points[touched], edited_local, edited_keypoints)
                                                  - values[touched])
            return values
        return sdf

    def sdf(self, points, identity, expression=None, n_parts=None, local_offsets=None):
        """(N,) float32 signed distance of model-frame points (N, 3)."""
        function = self.sdf_function(identity, expression, n_parts, local_offsets)
        return parallel.in_batches(function, np.asarray(points, np.float32))

    def keypoints(self, identity, local_offsets=None):
        """(K, 3) keypoints of a head, model frame (with local_offsets: of the edited head)."""
        local, _, keypoints = self._unedited(self._code(identity))
        return self._edited(local, keypoints, local_offsets)[1][0]

    def local_codes(self, identity):
        local, _ = self.network.split_code(self._code(identity))
        return local[0]

    def warp(self, points, identity, expression):
        """Observed points (N, 3) -> canonical points (N, 3) for an expression."""
        code = self._code(identity)
        values = np.asarray(expression, np.float32).reshape(1, -1)
        return parallel.in_batches(lambda chunk: self.network.warp_to_canonical(chunk[None], code, values)[0],
                          np.asarray(points, np.float32))

    def extract_mesh(self, identity, expression=None, resolution=128, progress=None, n_parts=None,
                     local_offsets=None, remember=False):
        """The head's surface as a SurfaceMesh in the model frame (closed, outward normals).

        The field is intersected with the meshing box, so whatever reaches the box's walls (a stray
        blob of a poorly trained model, an extreme identity) is capped there and the mesh stays closed.
        remember: keep the unedited head's field on this lattice, and take it from the last call that
        kept it if that was for this head: for live previews, which re-mesh one head with edit after
        edit, computing only the edited share anew (Preview, a region edit: 0.14-0.23 s, not 0.42-0.65 s).
        Keeping costs a little: 12 % more for a head at 256^3, nothing measurable at 128^3.
        """
        memo = self._unedited_memo(identity, expression, n_parts, resolution) if remember else None
        field = self.sdf_function(identity, expression, n_parts, local_offsets, memo)
        return extract_surface(lambda points: np.maximum(field(points), box_sdf(points)), resolution,
                               HEAD_BOUNDS, progress=progress)

    def _unedited_memo(self, identity, expression, n_parts, resolution):
        """The LatticeMemo of the unedited head on the lattice of `resolution`: the last one if that was
        of this head (outside an edit's fade the field is the unedited one), else a new one."""
        expression = self._expression(expression)
        key = (self._code(identity).tobytes(), None if expression is None else expression.tobytes(), n_parts,
               int(resolution))
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, LatticeMemo(Grid(resolution, HEAD_BOUNDS)))
        return self._memo[1]

