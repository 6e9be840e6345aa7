"""The imHead network on torch: identity field (decomposition, keypoints, local parts, blending,
FusionNet) and the expression warp. Maps tensors to tensors; no losses, data or files here.

What training optimizes, and the reference that numpy_network.NumpyNetwork (what runs in Blender,
without torch) is tested against.

Shapes: B heads, N points per head, K parts, L local code size.
"""
import math
import threading
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..runtime.config import ModelConfig
from ..runtime.errors import ModelFileError

_flushing = threading.local()


@contextmanager
def denormals_flushed():
    """Within: this thread flushes denormal floats to zero. Softplus far below zero makes them, and
    x86 CPUs take several times longer on them (meshing 18 % slower); flushed, no result changes by
    more than 1e-38. Nests; afterwards the thread computes with denormals again, as by default."""
    depth = getattr(_flushing, "depth", 0)
    if depth == 0:
        torch.set_flush_denormal(True)
    _flushing.depth = depth + 1
    try:
        yield
    finally:
        _flushing.depth = depth
        if depth == 0:
            torch.set_flush_denormal(False)


def positional_encoding(x, bands):
    """gamma(x) = (x, sin(2^l pi x), cos(2^l pi x)) for l = 0..bands-1."""
    freqs = (2.0 ** torch.arange(bands, dtype=x.dtype, device=x.device)) * math.pi
    angles = (x[..., None, :] * freqs[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)


def mlp(in_dim, width, layers, out_dim):
    """A DeepSDF-style stack of `layers` hidden layers, softplus between them (beta set by the caller)."""
    dims = [in_dim] + [width] * layers + [out_dim]
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))


def run_mlp(linears, x, beta):
    for i, linear in enumerate(linears):
        x = linear(x)
        if i < len(linears) - 1:
            x = F.softplus(x, beta=beta)
    return x


class PartNetworks(nn.Module):
    """K independent MLPs evaluated on (point, part) pairs, one matmul per (head, part) group.

    Each part sees its pair's coordinates through the positional encoding; the code input of the first
    layer is folded into a per-(head, part) bias, so pairs carry only their coordinates. Looping over
    groups of contiguous rows beats one batched matmul over gathered weights: no weight copies, no
    padding (2.3x faster at inference, as fast in training).
    """

    def __init__(self, n_parts, pe_bands, cond_dim, width, layers, out_dim, beta):
        super().__init__()
        in_dim = 3 + 6 * pe_bands
        dims = [in_dim] + [width] * layers + [out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a if len(self.weights) else a + cond_dim)
            self.weights.append(nn.Parameter(torch.empty(n_parts, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_parts, b).uniform_(-bound, bound)))
        bound = 1.0 / math.sqrt(in_dim + cond_dim)
        self.cond_weight = nn.Parameter(torch.empty(n_parts, cond_dim, width).uniform_(-bound, bound))
        self.n_parts = n_parts
        self.pe_bands = pe_bands
        self.beta = beta

    def first_layer_bias(self, cond):
        """(B, K, cond_dim) -> (B, K, width): the code's contribution to the first layer."""
        return torch.einsum("bkc,kcw->bkw", cond, self.cond_weight) + self.biases[0]

    def forward(self, points, group, group_bias):
        """points (P, 3) in each pair's part frame, group (P,) = head * K + part, group_bias (B * K, width)
        -> (P, out_dim)."""
        order = torch.argsort(group, stable=True)
        counts = torch.bincount(group, minlength=len(group_bias)).tolist()
        # The encoding and the per-group outputs are freed inside _grouped: with fewer (P, ...) tensors alive
        # at once, a meshing batch's memory stays with the allocator for the next batch instead of going
        # back to the system and being faulted in again (first Final head of a process 1.83 -> 1.60 s).
        out_sorted = self._grouped(positional_encoding(points[order], self.pe_bands), counts, group_bias)
        # Back to the pairs' order by gathering with the inverse permutation: one more (P, out_dim) tensor.
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        return out_sorted[inverse]

    def _grouped(self, encoded, counts, group_bias):
        """The MLPs on encoded pairs sorted by group (counts[g] rows each) -> (P, out_dim) in that order."""
        # Per-part views, taken once: indexing a ParameterList per group costs more than the small matmuls.
        first_biases = group_bias.unbind(0)
        weights = [w.unbind(0) for w in self.weights]
        biases = [b.unbind(0) for b in self.biases[1:]]
        outputs = []
        for g, rows in enumerate(encoded.split(counts)):
            if not counts[g]:
                continue
            part = g % self.n_parts
            h = torch.addmm(first_biases[g], rows, weights[0][part])
            for weight, bias in zip(weights[1:], biases):
                h = torch.addmm(bias[part], F.softplus(h, beta=self.beta), weight[part])
            outputs.append(h)
        return torch.cat(outputs)


class ImHeadNetwork(nn.Module):
    def __init__(self, config: ModelConfig, template_keypoints):
        super().__init__()
        self.config = c = config
        if c.latent == "global":
            self.decomposition = nn.Linear(c.global_dim, c.n_parts * c.local_dim)
        extra = c.extra_global_dim if c.latent == "local_global" else 0
        self.landmarks = mlp(c.n_parts * c.local_dim, c.landmark_width, 2, c.n_parts * 3)
        # Start the keypoints at the template's, so parts begin in their own neighbourhoods.
        with torch.no_grad():
            self.landmarks[-1].weight.mul_(0.01)
            self.landmarks[-1].bias.copy_(torch.as_tensor(template_keypoints, dtype=torch.float32).reshape(-1))
        part_out = c.part_feature if c.fusion else 1
        self.parts = PartNetworks(c.n_parts, c.pe_bands, c.local_dim + extra, c.part_width, c.part_layers,
                                  part_out, c.softplus_beta)
        if c.fusion:
            self.fusion = mlp(3 + c.part_feature, c.fusion_width, c.fusion_layers, 1)
        self.start_warp()

    def start_warp(self):
        """The expression warp (lift, identity projection, MLP) made anew: the identity map."""
        c = self.config
        self.warp_identity = nn.Linear(c.code_dim, c.warp_identity_dim)
        if c.warp_basis:
            self.expression_lift = None
            self.warp = mlp(3 + 6 * c.pe_bands + c.warp_identity_dim, c.warp_width, c.warp_layers,
                            3 * c.expression_dim)
        else:
            self.expression_lift = nn.Linear(c.expression_dim, c.expression_code)
            self.warp = mlp(3 + 6 * c.pe_bands + c.expression_code + c.warp_identity_dim, c.warp_width,
                            c.warp_layers, 3)
        with torch.no_grad():
            self.warp[-1].weight.mul_(0.01)
            self.warp[-1].bias.zero_()

    # --- identity ---------------------------------------------------------------------------------
    def split_code(self, codes):
        """(B, code_dim) -> local codes (B, K, L) and the extra global code (B, E) or None."""
        c = self.config
        if c.latent == "global":
            return self.decomposition(codes).view(-1, c.n_parts, c.local_dim), None
        local = codes[:, : c.n_parts * c.local_dim].view(-1, c.n_parts, c.local_dim)
        return local, (codes[:, c.n_parts * c.local_dim:] if c.latent == "local_global" else None)

    def keypoints(self, local):
        """(B, K, L) -> (B, K, 3)."""
        out = run_mlp(self.landmarks, local.flatten(1), self.config.softplus_beta)
        return out.view(-1, self.config.n_parts, 3)

    def blend_weights(self, points, keypoints, n_parts):
        """Indices (B, N, n) of the nearest n parts and their blend weights (B, N, n), summing to 1."""
        dist = torch.cdist(points, keypoints)
        if n_parts >= self.config.n_parts:
            nearest = torch.arange(self.config.n_parts, device=points.device).expand_as(dist)
            return nearest, torch.softmax(-dist / self.config.sigma, dim=-1)
        near_dist, nearest = torch.topk(dist, n_parts + 1, dim=-1, largest=False)
        # exp(-(d - d_min)/sigma) minus the next part's: the weight of the n-th part fades to zero before
        # it swaps with the (n+1)-th, so the field has no seams.
        scaled = torch.exp(-(near_dist - near_dist[..., :1]) / self.config.sigma)
        raw = (scaled[..., :-1] - scaled[..., -1:]).clamp_min(0.0)
        return nearest[..., :-1], raw / raw.sum(-1, keepdim=True).clamp_min(1e-12)

    def identity_sdf(self, points, local, keypoints, extra=None, n_parts=None):
        """Signed distance of canonical points (B, N, 3) for heads given by their local codes and keypoints.

        n_parts: how many of the nearest parts to evaluate (default: the config's blend_parts).
        """
        blended = self._blended_features(points, local, keypoints, extra, n_parts)
        if not self.config.fusion:
            return blended[..., 0]
        return run_mlp(self.fusion, torch.cat([points, blended], -1), self.config.softplus_beta)[..., 0]

    def _blended_features(self, points, local, keypoints, extra=None, n_parts=None):
        """The parts' features at points (B, N, 3), blended: (B, N, part_feature). Its own function so that
        the per-pair tensors are freed before FusionNet runs (see PartNetworks.forward)."""
        c = self.config
        n = min(n_parts or c.blend_parts, c.blend_parts)
        B, N, _ = points.shape
        nearest, weights = self.blend_weights(points, keypoints, n)
        cond = local if extra is None else torch.cat([local, extra[:, None].expand(-1, c.n_parts, -1)], -1)
        part_bias = self.parts.first_layer_bias(cond)                         # (B, K, W)
        head = torch.arange(B, device=points.device)[:, None, None].expand_as(nearest)
        group = (head * c.n_parts + nearest).reshape(-1)
        pair_points = points[:, :, None, :].expand(-1, -1, n, -1).reshape(-1, 3)
        if c.local_canonical:
            pair_points = pair_points - keypoints.reshape(-1, 3)[group]
        pair_points = pair_points / c.part_scale
        features = self.parts(pair_points, group, part_bias.reshape(B * c.n_parts, -1))
        return torch.bmm(weights.reshape(B * N, 1, n), features.view(B * N, n, -1)).view(B, N, -1)

    # --- expression -------------------------------------------------------------------------------
    def warp_to_canonical(self, points, codes, expression):
        """Observed points (B, N, 3) -> canonical points, for expression coefficients (B, E)."""
        c = self.config
        cond = self.warp_identity(codes)
        if not c.warp_basis:
            cond = torch.cat([self.expression_lift(expression), cond], -1)
        cond = cond[:, None, :].expand(-1, points.shape[1], -1)
        out = run_mlp(self.warp, torch.cat([positional_encoding(points, c.pe_bands), cond], -1), c.softplus_beta)
        if c.warp_basis:
            out = (out.view(*points.shape, c.expression_dim) @ expression[:, None, :, None])[..., 0]
        return points + out

    def warp_parameters(self):
        """The expression warp's parameters (what the second training stage trains)."""
        modules = (self.expression_lift, self.warp_identity, self.warp)
        return [p for module in modules if module is not None for p in module.parameters()]

    def forward(self, points, codes, expression=None, n_parts=None):
        """Signed distance (B, N) of observed points (B, N, 3) for identity codes (B, code_dim)."""
        local, extra = self.split_code(codes)
        if expression is not None:
            points = self.warp_to_canonical(points, codes, expression)
        return self.identity_sdf(points, local, self.keypoints(local), extra, n_parts)


def network_from_model_file(header, arrays):
    """The torch network of a loaded model file (modelfile.load_model_file's header and arrays), in eval
    mode: to train further, or as the reference."""
    net = ImHeadNetwork(header["config"], arrays["template_keypoints"])
    try:
        net.load_state_dict({name[len("param/"):]: torch.from_numpy(a) for name, a in arrays.items()
                             if name.startswith("param/")})
    except RuntimeError as exc:
        raise ModelFileError(f"weights do not match the model configuration: {exc}") from exc
    return net.eval()


def sdf_and_vjp(network, points, codes, expression=None, n_parts=None):
    """numpy_gradients.sdf_and_vjp by autograd on a torch network: the same contract, numpy in and out.
    The reference the numpy backward pass and the fit on it are tested against."""
    inputs = [torch.tensor(np.asarray(a), dtype=torch.float32, requires_grad=True)
              for a in (points, codes) + (() if expression is None else (expression,))]
    with torch.enable_grad(), denormals_flushed():
        sdf = network(*inputs[:2], inputs[2] if expression is not None else None, n_parts)

    def backward(upstream):
        with denormals_flushed():
            gradients = torch.autograd.grad(sdf, inputs, torch.as_tensor(np.asarray(upstream), dtype=torch.float32))
        gradients = [g.numpy() for g in gradients]
        return gradients[0], gradients[1], gradients[2] if expression is not None else None
    return sdf.detach().numpy(), backward
