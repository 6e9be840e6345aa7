"""Gradients of the numpy network's signed distance, for fitting scans inside Blender (no torch).

sdf_and_vjp runs numpy_network.NumpyNetwork's forward pass while keeping what its backward pass needs
(a tape), and returns the signed distance with a function that maps upstream weights to the gradients
of sum(upstream * sdf) with respect to the query points, the identity codes and the expression
coefficients: torch autograd's vector-Jacobian product on network.ImHeadNetwork, with the parameters
held fixed (tests/test_numpy_gradients.py checks the two to 1e-4).

The computation is NumpyNetwork's own, on its folded weights: every hidden layer carries t = beta *
(torch's pre-activation), so the softplus between layers has the slope sigmoid(t) and no beta appears in
the backward pass. The nearest-part selection is piecewise constant: no gradient flows through which
parts are chosen, as through torch's topk.

Shapes: B heads, N points per head, K parts, L local code size, P (point, part) pairs.
"""
import numpy as np

from .numpy_network import (POINT_BATCH, ROW_BLOCK, SOFTPLUS_RANGE, blend_displacements, positional_encoding,
                            sorted_part_pairs, summed_per_point)

# Pairs per chunk of points: what the forward's POINT_BATCH is for the bundled model (8192 points of 6
# parts), so that a chunk's tape (about 1 KB a pair, 1260 points of the paper's dense blend) stays
# tens of MB whatever the blend.
CHUNK_PAIRS = POINT_BATCH * 6
# Pairs whose tape is kept from the forward pass to the backward (about 10,000 points of the bundled
# model, 110 MB); the chunks beyond are run forward again inside backward, one at a time.
KEPT_PAIRS = 65536
# The softplus slopes below sigmoid(-20) = 2e-9 are dropped (as 1 - 2e-9 rounds to 1 above t = 20): the
# backward pass multiplies a gradient by one slope per layer, and slopes down to sigmoid(-60) = 9e-27
# made products below float32's normal range, which x86 CPUs compute several times slower (the warp's
# backward took 7x longer on them; torch flushes them, numpy cannot). No gradient changes by more than
# 2e-9 of its size per layer.
SLOPE_FLOOR = 20.0


def softplus_with_slope(t):
    """numpy_network.scaled_softplus(t) (overwriting t) and its derivative sigmoid(t), as torch's softplus
    backward computes it: z / (z + 1) of z = exp(t), which is 1 in float32 above the threshold (where
    softplus is t itself, slope 1). Below t = -SLOPE_FLOOR the slope (< 2e-9) is 0."""
    z = np.exp(np.clip(t, *SOFTPLUS_RANGE))
    one_plus_z = z + np.float32(1.0)
    slope = np.divide(z, one_plus_z, out=z)
    np.multiply(slope, t >= -SLOPE_FLOOR, out=slope)  # (a masked assignment is 10x slower)
    np.log(one_plus_z, out=one_plus_z)  # log, not log1p: see numpy_network.scaled_softplus
    return np.maximum(t, one_plus_z, out=t), slope


def layers_forward(x, weights, biases):
    """x (R, in) through linear layers (weights (in, out), folded by beta) with softplus between them ->
    output, and the slopes of the hidden layers' softplus (for layers_backward)."""
    slopes = []
    for i, (weight, bias) in enumerate(zip(weights, biases)):
        if i:
            x, slope = softplus_with_slope(x)
            slopes.append(slope)
        x = x @ weight
        x += bias
    return x, slopes


def layers_backward(d_out, weights, slopes):
    """Gradients of the input (R, in) and of the first layer's output (R, width: its bias's, per row)."""
    for weight, slope in zip(weights[:0:-1], slopes[::-1]):
        d_out = d_out @ weight.T
        d_out *= slope
    return d_out @ weights[0].T, d_out


def forward_rows(x, out, start, stop, weights, biases, tape, key):
    """Rows start:stop of x through the layers into out, in blocks of ROW_BLOCK rows (their activations
    stay in cache, as in NumpyNetwork); appends (rows, key, slopes) per block to the tape."""
    for begin in range(start, stop, ROW_BLOCK):
        rows = slice(begin, min(begin + ROW_BLOCK, stop))
        out[rows], slopes = layers_forward(x[rows], weights, biases)
        tape.append((rows, key, slopes))


def backward_rows(d_out, tape, weights_of, d_x, d_first_bias=None):
    """forward_rows backwards: d_x[rows] for every taped block; d_first_bias[key] (float64) summed over
    the key's rows. weights_of(key) -> the weights the key's rows ran through."""
    for rows, key, slopes in tape:
        d_x[rows], d_first = layers_backward(d_out[rows], weights_of(key), slopes)
        if d_first_bias is not None:
            d_first_bias[key] += d_first.sum(0)


def parts_forward(x, bounds, parts, first_bias, weights, biases):
    """The part networks on pairs x (P, in) sorted by group: rows bounds[i]:bounds[i + 1] run through
    part parts[i]'s layers (weights[l] (K, in, out), biases[l] (K, out)), with first_bias[i] as their
    first layer's bias -> output (P, out) and the hidden layers' softplus slopes (P, width) each.
    One matmul per group and layer, everything else on all rows at once: a few hundred numpy calls a
    chunk instead of a few thousand, so that worker threads seldom wait for each other's GIL."""
    group_of_row = np.repeat(np.arange(len(parts)), np.diff(bounds))
    slopes = []
    for layer, weight in enumerate(weights):
        if layer:
            x, slope = softplus_with_slope(x)
            slopes.append(slope)
        out = np.empty((len(x), weight.shape[-1]), np.float32)
        for group, part in enumerate(parts):
            rows = slice(bounds[group], bounds[group + 1])
            np.matmul(x[rows], weight[part], out=out[rows])
        out += (first_bias if layer == 0 else biases[layer][parts])[group_of_row]
        x = out
    return x, slopes


def parts_backward(d_out, bounds, parts, weights, slopes):
    """parts_forward backwards: gradients of its input (P, in) and of each group's first-layer bias
    (G, width), float64."""
    for layer in range(len(weights) - 1, -1, -1):
        weight = weights[layer]
        d_in = np.empty((len(d_out), weight.shape[1]), np.float32)
        for group, part in enumerate(parts):
            rows = slice(bounds[group], bounds[group + 1])
            np.matmul(d_out[rows], weight[part].T, out=d_in[rows])
        if layer == 0:
            # (np.add.reduceat over rows took 8x longer than these sums)
            return d_in, np.array([d_out[start:stop].sum(0) for start, stop in zip(bounds[:-1], bounds[1:])],
                                  np.float64)
        d_in *= slopes[layer - 1]
        d_out = d_in


def positional_encoding_backward(encoded, d_encoded, bands):
    """d x (R, 3) from d gamma(x) (R, 3 + 6 bands), given gamma(x): sin and cos are each other's
    derivatives, so the encoding itself is the tape."""
    freqs = (np.float32(2.0) ** np.arange(bands, dtype=np.float32)) * np.float32(np.pi)
    span = 3 * bands
    sin, cos = encoded[:, 3:3 + span], encoded[:, 3 + span:]
    d_angles = cos * d_encoded[:, 3:3 + span]
    d_angles -= sin * d_encoded[:, 3 + span:]
    d_angles = d_angles.reshape(-1, bands, 3)
    # angles[:, l, a] = freqs[l] * x[:, a]
    return d_encoded[:, :3] + np.einsum("rla,l->ra", d_angles, freqs)


class _Blend:
    """NumpyNetwork.blend_weights, taped: the nearest n parts of points (B, N, 3), their weights, and the
    backward pass from the weights' gradient to the points' and keypoints'."""

    def __init__(self, network, points, keypoints, n):
        c = network.config
        self.sigma, self.n_parts = c.sigma, c.n_parts
        # Computed as in NumpyNetwork, so that the same parts are chosen and the weights are the same.
        self.offsets = [points[:, :, None, a] - keypoints[:, None, :, a] for a in range(3)]  # (B, N, K) each
        dist = np.sqrt(np.square(self.offsets[0]) + np.square(self.offsets[1]) + np.square(self.offsets[2]))
        self.dense = n >= c.n_parts
        if self.dense:
            scaled = dist * np.float32(-1.0 / c.sigma)
            scaled -= scaled.max(-1, keepdims=True)
            np.exp(scaled, out=scaled)
            self.nearest = np.broadcast_to(np.arange(c.n_parts), dist.shape)
            self.weights = scaled / scaled.sum(-1, keepdims=True)
            self.dist = dist
            return
        order = np.argpartition(dist, n, axis=-1)[..., : n + 1]
        near_dist = np.take_along_axis(dist, order, -1)
        scaled = near_dist - near_dist[..., :n].min(-1, keepdims=True)
        scaled *= np.float32(-1.0 / c.sigma)
        np.exp(scaled, out=scaled)
        raw = scaled[..., :n] - scaled[..., n:]
        self.unclamped = raw >= 0   # torch's clamp_min passes the gradient where its input is at least 0
        np.maximum(raw, 0.0, out=raw)
        total = raw.sum(-1, keepdims=True)
        self.denominator = np.maximum(total, np.float32(1e-12))
        self.total_unclamped = total >= np.float32(1e-12)
        self.weights = raw / self.denominator
        self.nearest, self.order, self.scaled, self.dist = order[..., :n], order, scaled, near_dist

    def backward(self, d_weights):
        """(B, N, n) -> d points (B, N, 3), d keypoints (B, K, 3) (float64)."""
        B, N, _ = d_weights.shape
        inv_sigma = np.float32(1.0 / self.sigma)
        mean = (d_weights * self.weights).sum(-1, keepdims=True)
        if self.dense:
            # softmax's backward; the max subtracted before exp does not change the weights
            d_dist = (d_weights - mean) * self.weights * -inv_sigma               # (B, N, K)
            offsets = self.offsets
        else:
            # weights = raw / total; the nearest distance subtracted before exp scales every raw weight
            # alike and so cancels: no gradient through it (torch's sums to round-off).
            d_raw = (d_weights - mean * self.total_unclamped) / self.denominator
            d_raw *= self.unclamped
            d_scaled = np.concatenate([d_raw, -d_raw.sum(-1, keepdims=True)], -1)  # (B, N, n + 1)
            d_dist = d_scaled * self.scaled * -inv_sigma
            offsets = [np.take_along_axis(o, self.order, -1) for o in self.offsets]
        # d |x - k| / dx = (x - k) / |x - k|; zero at zero distance, as torch's cdist
        d_dist = np.divide(d_dist, self.dist, out=np.zeros_like(d_dist), where=self.dist > 0)
        d_points = np.stack([(d_dist * o).sum(-1) for o in offsets], -1)
        if self.dense:
            d_keypoints = -np.stack([(d_dist * o).sum(1, dtype=np.float64) for o in offsets], -1)
        else:
            index = (np.arange(B)[:, None, None] * self.n_parts + self.order).ravel()
            d_keypoints = -np.stack([np.bincount(index, (d_dist * o).ravel(), B * self.n_parts)
                                     for o in offsets], -1).reshape(B, self.n_parts, 3)
        return d_points, d_keypoints


def _identity_chunk(network, points, keypoints, group_bias, n):
    """NumpyNetwork.identity_sdf on canonical points (B, N, 3), taped -> sdf (B, N) and
    backward(d_sdf) -> d points (B, N, 3), d keypoints (B, K, 3), d group_bias (B * K, width), float64."""
    c = network.config
    B, N, _ = points.shape
    blend = _Blend(network, points, keypoints, n)
    order, counts, encoded = sorted_part_pairs(c, points, keypoints, blend.nearest)
    ends = np.cumsum(counts)
    groups = np.flatnonzero(counts)
    bounds = np.concatenate([[0], ends[groups]])
    parts = groups % c.n_parts
    features, part_slopes = parts_forward(encoded, bounds, parts, group_bias[groups],  # sorted, unweighted
                                          network.part_weights, network.part_biases)
    pair_weights = blend.weights.reshape(-1)[order, None]
    blended = summed_per_point(features * pair_weights, order, blend.nearest.shape)
    if network.fusion is None:
        sdf = blended[..., 0]
    else:
        inputs = np.concatenate([points, blended], -1).reshape(B * N, -1)
        out = np.empty((B * N, 1), np.float32)
        fusion_tape = []
        forward_rows(inputs, out, 0, B * N, network.fusion.weights, network.fusion.biases, fusion_tape, 0)
        sdf = out.reshape(B, N)

    def backward(d_sdf):
        d_points = np.zeros((B, N, 3), np.float32)
        if network.fusion is None:
            d_blended = np.zeros_like(blended)
            d_blended[..., 0] = d_sdf
        else:
            d_inputs = np.empty_like(inputs)
            backward_rows(d_sdf.reshape(-1, 1), fusion_tape, lambda _: network.fusion.weights, d_inputs)
            d_inputs = d_inputs.reshape(B, N, -1)
            d_points += d_inputs[..., :3]
            d_blended = d_inputs[..., 3:]
        # blended = sum over a point's pairs of weight * features
        d_pair = d_blended.reshape(B * N, -1)[order // n]                              # (P, features), sorted
        d_pair_weights = np.empty(len(order), np.float32)
        d_pair_weights[order] = np.einsum("pf,pf->p", d_pair, features)
        d_pair *= pair_weights
        d_encoded, d_bias = parts_backward(d_pair, bounds, parts, network.part_weights, part_slopes)
        d_group_bias = np.zeros(group_bias.shape, np.float64)
        d_group_bias[groups] = d_bias
        d_sorted = positional_encoding_backward(encoded, d_encoded, c.pe_bands) / c.part_scale  # (P, 3)
        d_pair_points = np.empty_like(d_sorted)
        d_pair_points[order] = d_sorted
        d_pair_points = d_pair_points.reshape(B, N, n, 3)
        for k in range(n):
            d_points += d_pair_points[:, :, k]
        d_points_blend, d_keypoints = blend.backward(d_pair_weights.reshape(B, N, n))
        d_points += d_points_blend
        if c.local_canonical:  # pairs see x - k_j: each group's pairs pull on its keypoint
            d_keypoints.reshape(-1, 3)[groups] -= np.add.reduceat(d_sorted, bounds[:-1], axis=0, dtype=np.float64)
        return d_points, d_keypoints, d_group_bias

    return sdf, backward


def _warp_chunk(network, points, warp_bias, expression):
    """NumpyNetwork.warp_to_canonical of points (B, N, 3), taped (warp_bias: the per-head first-layer
    bias (B, width)) -> canonical points and backward(d canonical) -> d points, d warp_bias (float64) and,
    for a basis warp (whose expression enters at the output, not through warp_bias), d expression (B, E)."""
    c = network.config
    B, N, _ = points.shape
    encoded = positional_encoding(points.reshape(-1, 3), c.pe_bands)
    out = np.empty((B * N, network.warp.weights[-1].shape[1]), np.float32)
    tape = []
    for b in range(B):
        forward_rows(encoded, out, b * N, (b + 1) * N, network.warp.weights,
                     [warp_bias[b]] + network.warp.biases[1:], tape, b)
    out = out.reshape(B, N, -1)
    offsets = blend_displacements(out, expression) if c.warp_basis else out

    def backward(d_canonical):
        d_out, d_expression = d_canonical, None
        if c.warp_basis:  # offsets = fields @ expression
            fields = out.reshape(B, N, 3, -1)
            d_out = d_canonical[..., None] * expression[:, None, None, :]
            d_expression = np.einsum("bnie,bni->be", fields, d_canonical, dtype=np.float64)
        d_encoded = np.empty_like(encoded)
        d_warp_bias = np.zeros(warp_bias.shape, np.float64)
        backward_rows(d_out.reshape(B * N, -1), tape, lambda _: network.warp.weights, d_encoded, d_warp_bias)
        d_points = d_canonical + positional_encoding_backward(encoded, d_encoded, c.pe_bands).reshape(B, N, 3)
        return d_points, d_warp_bias, d_expression

    return points + offsets, backward


def sdf_and_vjp(network, points, codes, expression=None, n_parts=None):
    """Signed distance (B, N) float32 of observed points (B, N, 3) for codes (B, code_dim), expression (B, E) or None,
    the same values as network(points, codes, expression, n_parts) (within 1e-6), and
    backward(upstream (B, N)) -> (d_points (B, N, 3), d_codes (B, code_dim), d_expression (B, E) or None):
    the gradients of sum(upstream * sdf)."""
    c = network.config
    points = np.asarray(points, np.float32)
    codes = np.asarray(codes, np.float32)
    B, N, _ = points.shape
    n = min(n_parts or c.blend_parts, c.blend_parts)

    # What every point of a head shares: local codes, keypoints, the parts' and the warp's first-layer biases.
    local, extra = network.split_code(codes)
    keypoints, landmark_slopes = layers_forward(local.reshape(B, -1), network.landmarks.weights,
                                                network.landmarks.biases)
    keypoints = keypoints.reshape(B, c.n_parts, 3)
    cond = local if extra is None else np.concatenate(
        [local, np.broadcast_to(extra[:, None], (B, c.n_parts, extra.shape[-1]))], -1)
    group_bias = network.first_layer_bias(cond).reshape(-1, c.part_width)
    if expression is not None:
        expression = np.asarray(expression, np.float32)
        warp_bias = network.warp_first_bias(codes, expression)

    def chunk_forward(start, stop):
        canonical, warp_backward = points[:, start:stop], None
        if expression is not None:
            canonical, warp_backward = _warp_chunk(network, canonical, warp_bias, expression)
        sdf, identity_backward = _identity_chunk(network, canonical, keypoints, group_bias, n)

        def backward(d_sdf):
            d_canonical, d_keypoints, d_group_bias = identity_backward(d_sdf)
            warp_gradients = (None, None)
            if warp_backward is not None:
                d_canonical, *warp_gradients = warp_backward(d_canonical)
            return d_canonical, d_keypoints, d_group_bias, *warp_gradients

        return sdf, backward

    step = max(1, CHUNK_PAIRS // n)
    chunks = [(start, min(start + step, N)) for start in range(0, N, step)]
    sdf = np.empty((B, N), np.float32)
    tapes = []
    for start, stop in chunks:
        sdf[:, start:stop], chunk_backward = chunk_forward(start, stop)
        kept = start == 0 or stop * n * B <= KEPT_PAIRS  # the first chunk's always: one chunk is never run twice
        tapes.append(chunk_backward if kept else None)
        del chunk_backward
    used = []

    def backward(upstream):
        if used:
            raise RuntimeError("backward may be called once: its tapes are freed")
        used.append(True)
        upstream = np.asarray(upstream, np.float32).reshape(B, N)
        d_points = np.empty_like(points)
        d_keypoints = np.zeros((B, c.n_parts, 3), np.float64)
        d_group_bias = np.zeros(group_bias.shape, np.float64)
        d_warp_bias = np.zeros((B, c.warp_width), np.float64)
        d_basis_expression = np.zeros((B, c.expression_dim), np.float64)  # a basis warp's, at its output
        for (start, stop), chunk_backward in zip(chunks, tapes):
            if chunk_backward is None:  # not kept: run forward again
                chunk_backward = chunk_forward(start, stop)[1]
            d_points[:, start:stop], d_k, d_g, d_w, d_e = chunk_backward(upstream[:, start:stop])
            d_keypoints += d_k
            d_group_bias += d_g
            if d_w is not None:
                d_warp_bias += d_w
            if d_e is not None:
                d_basis_expression += d_e
        tapes.clear()
        # The per-head quantities back to the codes.
        d_group_bias = d_group_bias.astype(np.float32).reshape(B, c.n_parts, -1)
        d_cond = np.einsum("bkw,kcw->bkc", d_group_bias, network.part_cond_weight)
        d_local, _ = layers_backward(d_keypoints.astype(np.float32).reshape(B, -1), network.landmarks.weights,
                                     landmark_slopes)
        d_local = d_local.reshape(B, c.n_parts, c.local_dim) + d_cond[..., :c.local_dim]
        if c.latent == "global":
            d_codes = d_local.reshape(B, -1) @ network.decomposition.weights[0].T
        else:
            d_codes = np.zeros_like(codes)
            d_codes[:, :c.n_parts * c.local_dim] = d_local.reshape(B, -1)
            if c.latent == "local_global":
                d_codes[:, c.n_parts * c.local_dim:] = d_cond[..., c.local_dim:].sum(1)
        d_expression = None
        if expression is not None:
            d_warp_cond = d_warp_bias.astype(np.float32) @ network.warp_condition_weight.T
            lift = 0 if c.warp_basis else network.expression_lift.weights[0].shape[1]
            d_expression = (d_basis_expression.astype(np.float32) if c.warp_basis
                            else d_warp_cond[:, :lift] @ network.expression_lift.weights[0].T)
            d_codes += d_warp_cond[:, lift:] @ network.warp_identity.weights[0].T
        return d_points, d_codes.astype(np.float32), d_expression

    return sdf, backward
