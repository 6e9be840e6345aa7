"""One configuration object for the whole network, with named presets and the paper's ablations.

Every field is a constructor argument of ImHeadNetwork; a model file carries the exact config.
"""
from dataclasses import asdict, dataclass, fields, replace

LATENT_MODES = ("global", "local", "local_global")


@dataclass(frozen=True)
class ModelConfig:
    # Identity latent space (supplementary Table 1, rows 1-3 and 6).
    latent: str = "global"          # global: z -> linear -> K local codes; local: codes are the local codes;
                                    # local_global: local codes plus an extra global code (NPHM-like)
    global_dim: int = 256
    n_parts: int = 39
    local_dim: int = 32
    extra_global_dim: int = 96      # only for latent == "local_global"
    landmark_width: int = 256       # hidden width of the 3-layer keypoint regressor
    # Local-part networks g_j.
    pe_bands: int = 7
    local_canonical: bool = True    # parts see x - k_j (False: ablation row 5, parts see x)
    part_scale: float = 1.0         # parts see (x - k_j) / part_scale: below 1, the finest encoding band is
                                    # finer (L = 7 bands at scale 1 resolve ~6 mm; at 0.25, ~1.5 mm)
    part_layers: int = 4
    part_width: int = 200
    part_feature: int = 64
    # Blending: w_j = softmax_j(-|x - k_j| / sigma) over the nearest `blend_parts` parts, made continuous
    # by subtracting the weight of the next-nearest part (blend_parts == n_parts is the paper's dense blend).
    sigma: float = 0.06
    blend_parts: int = 39
    # FusionNet (False: ablation row 4, each part regresses the signed distance itself).
    fusion: bool = True
    fusion_layers: int = 4
    fusion_width: int = 200
    softplus_beta: float = 100.0
    # Expression warp x_can = x_obs + delta(gamma(x_obs), e(z_exp), z_id).
    expression_dim: int = 53
    expression_code: int = 64       # the lifted expression e(z_exp); unused with warp_basis
    warp_basis: bool = False        # delta = D(gamma(x_obs), z_id) z_exp: one displacement field per expression
                                    # shape, blended by the shapes' weights (no move at z_exp = 0)
    warp_identity_dim: int = 32
    warp_layers: int = 8
    warp_width: int = 128

    def __post_init__(self):
        if self.latent not in LATENT_MODES:
            raise ValueError(f"latent must be one of {LATENT_MODES}, got {self.latent!r}")
        if not 1 <= self.blend_parts <= self.n_parts:
            raise ValueError(f"blend_parts must be in 1..{self.n_parts}, got {self.blend_parts}")

    @property
    def code_dim(self):
        """Size of one identity code, the vector an auto-decoder learns per head."""
        local_total = self.n_parts * self.local_dim
        return {"global": self.global_dim, "local": local_total,
                "local_global": local_total + self.extra_global_dim}[self.latent]

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**values)


PRESETS = {
    # The sizes of the paper (supplementary §3): parts and FusionNet 4 x 200, warp 8 x 128, dense blend.
    "paper": ModelConfig(),
    # What trains well on 2 CPU cores in about two hours: narrower parts and FusionNet, a blend truncated to
    # the 6 nearest parts, a shallower warp. Latent sizes stay the paper's, so editing and fitting behave
    # the same.
    "compact": ModelConfig(part_layers=3, part_width=64, part_feature=32, blend_parts=6,
                           fusion_layers=3, fusion_width=128, warp_layers=4, warp_width=128),
    # Seconds-long training for tests.
    "tiny": ModelConfig(landmark_width=64, part_layers=2, part_width=32, part_feature=16, blend_parts=4,
                        fusion_layers=2, fusion_width=32, warp_layers=2, warp_width=32, expression_code=16),
}

# Supplementary Table 1, applied on top of any preset.
ABLATIONS = {
    "local_312": dict(latent="local", local_dim=8),
    "local_1248": dict(latent="local", local_dim=32),
    "local_global_1344": dict(latent="local_global", local_dim=32, extra_global_dim=96),
    "no_fusion": dict(fusion=False),
    "no_local_canonical": dict(local_canonical=False),
    "full": dict(),
}


def make_config(preset="compact", ablation="full", **overrides):
    """A preset, with one ablation variant and any field overrides applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose from {sorted(ABLATIONS)}")
    return replace(PRESETS[preset], **ABLATIONS[ablation], **overrides)
