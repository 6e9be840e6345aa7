"""The trained imHead network on numpy: what runs inside Blender, where there is no torch.

The same computation as network.ImHeadNetwork (the training and reference implementation), built from
a model file's arrays (`param/<name>`, torch's state_dict names and layouts), in float32 throughout.
Tested against the torch network to 1e-5 in signed distance (tests/test_numpy_network.py).

Shapes: B heads, N points per head, K parts, L local code size.
"""
import numpy as np

from .config import ModelConfig
from .errors import ModelFileError

# Points per pass through the part networks: bounds the (pairs x features) temporaries (8192 points of
# the bundled model: 49k pairs, 6 MB per array) whatever a caller sends at once.
POINT_BATCH = 8192
# Rows per matmul in the MLPs: a layer's activations of 1024 rows stay in the core's cache between the
# matmul and softplus's passes over them (FusionNet on 8192 points: 16.0 ms in one block, 11.6 ms in
# blocks of 1024, 12.2 ms of 512).
ROW_BLOCK = 1024
# softplus is log1p(exp(t)) of t = beta x clipped to this range. Below: exp(-60) = 8.8e-27 is still a
# normal float, while exp of anything below about -87 is a denormal, which x86 CPUs compute several times
# slower (torch flushes them: network.denormals_flushed; numpy cannot): the whole network ran 2.5x slower
# without the floor, which changes softplus by less than 1e-28. Above: torch's threshold, beyond which
# softplus is x itself.
SOFTPLUS_RANGE = (-60.0, 20.0)


# numpy's float32 log1p has no vectorised loop: on a Zen 2 core it took 4.1 ms for 1024 x 200 values,
# log 0.47 ms. log(1 + z) instead of log1p(z) is off by less than half an ulp of 1 (6e-8), where z is too
# small to change 1 + z: a softplus that tiny adds nothing the next layer's float32 sums can keep.
def scaled_softplus(t):
    """beta * softplus(x, beta) of t = beta * x, torch's softplus: log(1 + exp(t)), or t itself where
    t > 20. Overwrites t (float32)."""
    tail = np.clip(t, *SOFTPLUS_RANGE)
    np.exp(tail, out=tail)
    tail += np.float32(1.0)
    np.log(tail, out=tail)
    # Above the threshold the clipped term is 20 < t; below it, log1p(exp(t)) > t: the larger of the two
    # is the one torch returns.
    return np.maximum(t, tail, out=t)


def positional_encoding(x, bands):
    """gamma(x) = (x, sin(2^l pi x), cos(2^l pi x)) for l = 0..bands-1, along the last axis (float32)."""
    freqs = (np.float32(2.0) ** np.arange(bands, dtype=np.float32)) * np.float32(np.pi)
    angles = (x[..., None, :] * freqs[:, None]).reshape(*x.shape[:-1], 3 * bands)
    return np.concatenate([x, np.sin(angles), np.cos(angles)], axis=-1)


def beta_scales(layers, beta):
    """(weight factor, bias factor) of each of `layers` linear layers with softplus(beta) between them, so
    that every hidden layer computes t = beta * (torch's pre-activation) and the last one torch's output.

    softplus(x, beta) = scaled_softplus(beta x) / beta, so the 1 / beta goes into the next layer's weights
    and the next beta into its own: two fewer of six passes over every activation (the multiplications).
    Weights scaled by beta round differently; the bundled model's field stays within 6e-7 of torch's.
    """
    return [((beta if i == 0 else 1.0) / (beta if i == layers - 1 else 1.0), 1.0 if i == layers - 1 else beta)
            for i in range(layers)]


def blend_displacements(fields, expression):
    """A basis warp's output (B, N, 3 * E): one displacement per expression shape -> their blend by the
    expression's weights (B, E) -> (B, N, 3)."""
    B, N, _ = fields.shape
    return (fields.reshape(B, N, 3, -1) @ expression[:, None, :, None])[..., 0]


class _MLP:
    """torch's linear layers (weights (out, in)) with softplus(beta) between them, beta folded in."""

    def __init__(self, weights, biases, beta):
        scales = beta_scales(len(weights), beta)
        self.weights = [np.ascontiguousarray(w.T * np.float32(ws)) for w, (ws, _) in zip(weights, scales)]
        self.biases = [b * np.float32(bs) for b, (_, bs) in zip(biases, scales)]

    def __call__(self, x, first_bias=None):
        """x (..., in) -> (..., out); first_bias replaces the first layer's (already scaled)."""
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = (scaled_softplus(x) if i else x) @ weight
            x += first_bias if i == 0 and first_bias is not None else bias
        return x


def _rows_in_blocks(function, x):
    """function over x (N, in) in blocks of ROW_BLOCK rows, concatenated."""
    if len(x) <= ROW_BLOCK:
        return function(x)
    return np.concatenate([function(x[row:row + ROW_BLOCK]) for row in range(0, len(x), ROW_BLOCK)])


def sorted_part_pairs(config, points, keypoints, nearest):
    """Each point (B, N, 3) paired with its nearest parts (B, N, n), in its part's canonical frame,
    sorted by (head, part) group so that each group is one run of rows: one matmul a group, as
    network.PartNetworks does. Returns the sort order of the pairs, the rows per group (B * K) and the
    sorted pairs' positional encodings."""
    B, N, n = nearest.shape
    group = (np.arange(B)[:, None, None] * config.n_parts + nearest).reshape(-1)
    pair_points = np.broadcast_to(points[:, :, None, :], (B, N, n, 3)).reshape(-1, 3)
    if config.local_canonical:
        pair_points = pair_points - keypoints.reshape(-1, 3)[group]
    pair_points = pair_points / config.part_scale
    # A stable sort of 8 or 16-bit keys is a radix sort: 8x faster than on int64.
    order = np.argsort(group.astype(np.min_scalar_type(B * config.n_parts)), kind="stable")
    counts = np.bincount(group, minlength=B * config.n_parts)
    return order, counts, positional_encoding(pair_points[order], config.pe_bands)


def summed_per_point(sorted_features, order, pairs_shape):
    """Features of the pairs in sorted order (P, F), put back in the pairs' order (B, N, n) and summed
    over each point's n pairs: (B, N, F)."""
    B, N, n = pairs_shape
    unsorted = np.empty_like(sorted_features)
    unsorted[order] = sorted_features
    unsorted = unsorted.reshape(B, N, n, -1)
    summed = unsorted[:, :, 0].copy()
    for k in range(1, n):  # n slices added: a sum over an axis of n is several times slower
        summed += unsorted[:, :, k]
    return summed


class NumpyNetwork:
    """network.ImHeadNetwork's forward pass on numpy, from the arrays of a model file."""

    def __init__(self, config: ModelConfig, arrays):
        self.config = c = config
        params = {name[len("param/"):]: np.asarray(a, np.float32) for name, a in arrays.items()
                  if name.startswith("param/")}
        check_parameters(c, params)
        beta = c.softplus_beta

        def mlp(prefix, layers):
            return _MLP([params[f"{prefix}.{i}.weight"] for i in range(layers)],
                        [params[f"{prefix}.{i}.bias"] for i in range(layers)], beta)

        def linear(name):
            return _MLP([params[f"{name}.weight"]], [params[f"{name}.bias"]], beta)

        if c.latent == "global":
            self.decomposition = linear("decomposition")
        self.landmarks = mlp("landmarks", 3)
        layers = c.part_layers + 1
        scales = beta_scales(layers, beta)
        self.part_weights = [params[f"parts.weights.{i}"] * np.float32(ws)           # (K, in, out)
                             for i, (ws, _) in enumerate(scales)]
        self.part_biases = [params[f"parts.biases.{i}"] * np.float32(bs)             # (K, out)
                            for i, (_, bs) in enumerate(scales)]
        self.part_cond_weight = params["parts.cond_weight"] * np.float32(scales[0][0])  # (K, cond, width)
        self.fusion = mlp("fusion", c.fusion_layers + 1) if c.fusion else None
        self.expression_lift = None if c.warp_basis else linear("expression_lift")
        self.warp_identity = linear("warp_identity")
        self.warp = mlp("warp", c.warp_layers + 1)
        # The warp's first layer reads (gamma(x), condition); the condition is the same for every point
        # of a head, so its share is folded into a per-head bias (warp_to_canonical).
        pe_dim = 3 + 6 * c.pe_bands
        self.warp_condition_weight = np.ascontiguousarray(self.warp.weights[0][pe_dim:])
        self.warp.weights[0] = np.ascontiguousarray(self.warp.weights[0][:pe_dim])

    # --- identity ---------------------------------------------------------------------------------
    def split_code(self, codes):
        """(B, code_dim) -> local codes (B, K, L) and the extra global code (B, E) or None."""
        c = self.config
        codes = np.asarray(codes, np.float32)
        if c.latent == "global":
            return self.decomposition(codes).reshape(-1, c.n_parts, c.local_dim), None
        local = codes[:, : c.n_parts * c.local_dim].reshape(-1, c.n_parts, c.local_dim)
        return local, (codes[:, c.n_parts * c.local_dim:] if c.latent == "local_global" else None)

    def keypoints(self, local):
        """(B, K, L) -> (B, K, 3)."""
        return self.landmarks(local.reshape(len(local), -1)).reshape(-1, self.config.n_parts, 3)

    def blend_weights(self, points, keypoints, n_parts):
        """Indices (B, N, n) of the nearest n parts and their blend weights (B, N, n), summing to 1."""
        c = self.config
        # One (B, N, K) square per axis: a sum over a last axis of 3 is several times slower.
        axes = [np.square(points[:, :, None, a] - keypoints[:, None, :, a]) for a in range(3)]
        dist = np.sqrt(axes[0] + axes[1] + axes[2])
        if n_parts >= c.n_parts:
            scaled = dist * np.float32(-1.0 / c.sigma)
            scaled -= scaled.max(-1, keepdims=True)
            np.exp(scaled, out=scaled)
            nearest = np.broadcast_to(np.arange(c.n_parts), dist.shape)
            return nearest, scaled / scaled.sum(-1, keepdims=True)
        # The n nearest (in no particular order) and the (n+1)-th, at position n.
        order = np.argpartition(dist, n_parts, axis=-1)[..., : n_parts + 1]
        near_dist = np.take_along_axis(dist, order, -1)
        # exp(-(d - d_min)/sigma) minus the next part's: the weight of the n-th part fades to zero before
        # it swaps with the (n+1)-th, so the field has no seams.
        scaled = near_dist - near_dist[..., :n_parts].min(-1, keepdims=True)
        scaled *= np.float32(-1.0 / c.sigma)
        np.exp(scaled, out=scaled)
        raw = scaled[..., :n_parts] - scaled[..., n_parts:]
        np.maximum(raw, 0.0, out=raw)
        return order[..., :n_parts], raw / np.maximum(raw.sum(-1, keepdims=True), np.float32(1e-12))

    def first_layer_bias(self, cond):
        """(B, K, cond_dim) -> (B, K, width): the code's contribution to the parts' first layer, times beta
        (see beta_scales)."""
        return np.einsum("bkc,kcw->bkw", cond, self.part_cond_weight) + self.part_biases[0]

    def identity_sdf(self, points, local, keypoints, extra=None, n_parts=None):
        """Signed distance (B, N) of canonical points (B, N, 3) for heads given by their local codes and
        keypoints. n_parts: how many of the nearest parts to evaluate (default: the config's blend_parts)."""
        c = self.config
        points = np.asarray(points, np.float32)
        n = min(n_parts or c.blend_parts, c.blend_parts)
        cond = local if extra is None else np.concatenate(
            [local, np.broadcast_to(extra[:, None], (len(extra), c.n_parts, extra.shape[-1]))], -1)
        group_bias = self.first_layer_bias(cond).reshape(-1, c.part_width)  # (B * K, width)
        B = len(points)
        out = np.empty(points.shape[:2], np.float32)
        for start in range(0, points.shape[1], POINT_BATCH):
            chunk = points[:, start:start + POINT_BATCH]
            blended = self._blended_features(chunk, keypoints, group_bias, n)
            if self.fusion is None:
                out[:, start:start + POINT_BATCH] = blended[..., 0]
                continue
            inputs = np.concatenate([chunk, blended], -1).reshape(-1, 3 + blended.shape[-1])
            out[:, start:start + POINT_BATCH] = _rows_in_blocks(self.fusion, inputs).reshape(B, -1)
        return out

    def _blended_features(self, points, keypoints, group_bias, n):
        """The n nearest parts' features at points (B, N, 3), blended: (B, N, features)."""
        c = self.config
        B, N, _ = points.shape
        nearest, weights = self.blend_weights(points, keypoints, n)
        order, counts, encoded = sorted_part_pairs(c, points, keypoints, nearest)
        features = self._grouped(encoded, counts, group_bias)
        features *= weights.reshape(-1)[order, None]
        return summed_per_point(features, order, nearest.shape)

    def _grouped(self, encoded, counts, group_bias):
        """The part MLPs on encoded pairs sorted by group (counts[g] rows each) -> (P, out) in that order."""
        c = self.config
        out = np.empty((len(encoded), self.part_weights[-1].shape[-1]), np.float32)
        ends = np.cumsum(counts).tolist()
        for g in np.flatnonzero(counts).tolist():
            part = g % c.n_parts
            for start in range(ends[g] - int(counts[g]), ends[g], ROW_BLOCK):
                stop = min(start + ROW_BLOCK, ends[g])
                h = encoded[start:stop] @ self.part_weights[0][part]
                h += group_bias[g]
                for weight, bias in zip(self.part_weights[1:], self.part_biases[1:]):
                    h = scaled_softplus(h) @ weight[part]
                    h += bias[part]
                out[start:stop] = h
        return out

    # --- expression -------------------------------------------------------------------------------
    def warp_to_canonical(self, points, codes, expression):
        """Observed points (B, N, 3) -> canonical points, for expression coefficients (B, E)."""
        c = self.config
        points, expression = np.asarray(points, np.float32), np.asarray(expression, np.float32)
        first_bias = self.warp_first_bias(codes, expression)[:, None]  # (B, 1, width)
        out = np.empty_like(points)
        for start in range(0, points.shape[1], ROW_BLOCK):
            chunk = points[:, start:start + ROW_BLOCK]
            offsets = self.warp(positional_encoding(chunk, c.pe_bands), first_bias)
            if c.warp_basis:
                offsets = blend_displacements(offsets, expression)
            out[:, start:start + ROW_BLOCK] = chunk + offsets
        return out

    def warp_first_bias(self, codes, expression):
        """(B, width): the warp's first-layer bias for each head, with its condition folded in (the lifted
        expression, unless warp_basis, and the identity's projection)."""
        cond = self.warp_identity(np.asarray(codes, np.float32))
        if not self.config.warp_basis:
            cond = np.concatenate([self.expression_lift(np.asarray(expression, np.float32)), cond], -1)
        return cond @ self.warp_condition_weight + self.warp.biases[0]

    def __call__(self, points, codes, expression=None, n_parts=None):
        """Signed distance (B, N) of observed points (B, N, 3) for identity codes (B, code_dim)."""
        local, extra = self.split_code(codes)
        if expression is not None:
            points = self.warp_to_canonical(points, codes, expression)
        return self.identity_sdf(points, local, self.keypoints(local), extra, n_parts)


def _expected_shapes(c):
    """{parameter name: shape} of network.ImHeadNetwork for config c."""
    pe_dim = 3 + 6 * c.pe_bands
    shapes = {}

    def linear(name, a, b):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (b, a), (b,)

    def mlp(name, in_dim, width, layers, out_dim):
        dims = [in_dim] + [width] * layers + [out_dim]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            linear(f"{name}.{i}", a, b)

    if c.latent == "global":
        linear("decomposition", c.global_dim, c.n_parts * c.local_dim)
    mlp("landmarks", c.n_parts * c.local_dim, c.landmark_width, 2, c.n_parts * 3)
    part_dims = [pe_dim] + [c.part_width] * c.part_layers + [c.part_feature if c.fusion else 1]
    for i, (a, b) in enumerate(zip(part_dims[:-1], part_dims[1:])):
        shapes[f"parts.weights.{i}"], shapes[f"parts.biases.{i}"] = (c.n_parts, a, b), (c.n_parts, b)
    extra = c.extra_global_dim if c.latent == "local_global" else 0
    shapes["parts.cond_weight"] = (c.n_parts, c.local_dim + extra, c.part_width)
    if c.fusion:
        mlp("fusion", 3 + c.part_feature, c.fusion_width, c.fusion_layers, 1)
    linear("warp_identity", c.code_dim, c.warp_identity_dim)
    if c.warp_basis:
        mlp("warp", pe_dim + c.warp_identity_dim, c.warp_width, c.warp_layers, 3 * c.expression_dim)
    else:
        linear("expression_lift", c.expression_dim, c.expression_code)
        mlp("warp", pe_dim + c.expression_code + c.warp_identity_dim, c.warp_width, c.warp_layers, 3)
    return shapes


def check_parameters(config, params):
    """ModelFileError unless the parameters are exactly the configured network's."""
    expected = _expected_shapes(config)
    problems = [f"missing {name}" for name in sorted(set(expected) - set(params))]
    problems += [f"unexpected {name}" for name in sorted(set(params) - set(expected))]
    problems += [f"{name} has shape {params[name].shape}, the configuration needs {shape}"
                 for name, shape in expected.items() if name in params and params[name].shape != shape]
    if problems:
        raise ModelFileError(f"weights do not match the model configuration: {'; '.join(problems[:5])}")
