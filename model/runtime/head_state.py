"""The parameters of one head: what an imHead head object keeps in a .blend (its `Object.imhead` state,
imhead_blender/heads.py) and what the command line reads and writes as JSON, one serialisation for both.

A head is its identity code (sampled from a seed and a variation, or fitted to a scan) and its region
edits: regions replaced by local codes ("randomize", "copy from") and slider values on top (standard
deviations along each region's principal directions, editing.py). The edits are kept as they were
made, not as local-code offsets, so a region copied from another head stays that head's region whatever
happens to the rest; local_offsets computes the offsets from them. Expression values (0..1 per
expression name) say which expression the head shows; in Blender they are the values of the baked
shape keys.

    state = HeadState.generated(model, seed=10, variation=1.0)
    state.randomize_region(model, "nose", seed=3, scale=2.0)
    mesh = head_mesh(model, state, resolution=128)
    state.save("head.json")
"""
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import editing, expressions
from .errors import ImHeadError
from .meshing import SurfaceMesh, vertex_normals

FORMAT = "imhead-head"
FORMAT_VERSION = 1
# The groups of edits, in the order local_offsets applies them (a replaced region, then its sliders).
EDIT_GROUPS = ("region_codes", "slider_values")


@dataclass
class HeadState:
    model_hash: str                # content hash of the model file that made the head
    identity: np.ndarray           # (code_dim,) float32
    seed: int = 0                  # the identity's seed (HeadModel.sample_identity); 0 for a fitted head
    variation: float = 0.0         # ... and its scale: 0 = the mean head, 1 a typical head, 2 a striking one
    resolution: int = 0            # grid size the head was last meshed at (0: not meshed)
    fitted_to: str = ""            # the scan the identity was fitted to; empty for a generated head
    region_codes: dict = field(default_factory=dict)       # {region: (P * L,) float32} replaced regions
    slider_values: dict = field(default_factory=dict)      # {region: [float, ...]} standard deviations
    expression_values: dict = field(default_factory=dict)  # {expression name: 0..1}; absent = 0
    fit: dict = field(default_factory=dict)  # a fitted head's fit: unit, transform (scan -> model frame), residuals

    # --- made from the model -------------------------------------------------------------------------
    @classmethod
    def generated(cls, model, seed, variation=1.0, resolution=0):
        """The head of `seed` at `variation` standard deviations from the mean head."""
        return cls(model.hash, model.sample_identity(seed, variation), int(seed), float(variation), int(resolution))

    @classmethod
    def fitted(cls, model, result, scan_name, resolution=0):
        """The head of a fit (fit.FitResult) to the scan named `scan_name`, its fitted expression shown."""
        return cls(model.hash, result.identity, resolution=int(resolution), fitted_to=str(scan_name),
                   expression_values={name: float(value) for name, value in
                                      zip(model.expression_names, result.expression) if value > 0},
                   fit={"unit": result.unit, "residual_mm": round(result.residual_mm, 4),
                        "median_mm": round(result.median_mm, 4), "within_2mm": round(result.within_2mm, 4),
                        "within_5mm": round(result.within_5mm, 4), "steps": result.steps,
                        "seconds": round(result.seconds, 2), "transform": result.transform.tolist()})

    def check_model(self, model):
        """ImHeadError unless `model` is the model that made this head."""
        if model.hash != self.model_hash:
            raise ImHeadError(f"this head was made with another model (hash {self.model_hash[:12]}); "
                              f"the model file {model.path} is {model.hash[:12]}")

    # --- region edits --------------------------------------------------------------------------------
    def local_offsets(self, model):
        """The local-code offsets (K, L) of the edits: replaced regions, then the sliders on top."""
        offsets = editing.no_edit(model)
        for region, codes in self.region_codes.items():
            offsets = editing.set_region(offsets, model, region, codes, self.identity)
        return offsets + editing.slider_offsets(model, self.slider_values)

    @property
    def has_edits(self):
        return bool(self.region_codes) or any(any(values) for values in self.slider_values.values())

    def edits_digest(self):
        """A digest of what the head's mesh shows: identity and edits."""
        digest = hashlib.sha256(np.asarray(self.identity, np.float32).tobytes())
        for key in EDIT_GROUPS:
            for region, values in sorted(getattr(self, key).items()):
                digest.update(f"{key}/{region}".encode())
                digest.update(np.asarray(values, np.float32).tobytes())
        return digest.hexdigest()

    def set_sliders(self, model, region, values):
        """The region's slider values (standard deviations), at most editing.REGION_SLIDERS of them."""
        editing.region_basis(model, region)
        values = [float(v) for v in values]
        if len(values) > editing.REGION_SLIDERS:
            raise ImHeadError(f"a region has {editing.REGION_SLIDERS} sliders; {len(values)} values were given")
        self.slider_values[region] = values + [0.0] * (editing.REGION_SLIDERS - len(values))

    def randomize_region(self, model, region, seed, scale=1.0):
        """Replace `region` by a random plausible one (its sliders back to zero)."""
        self._replace_region(region, editing.random_region_codes(model, region, seed, scale))

    def copy_region(self, model, region, source):
        """Give this head the region of the head `source` (a HeadState of the same model) as edited there."""
        source.check_model(model)
        self._replace_region(region, editing.edited_region_codes(model, region, source.identity,
                                                                 source.local_offsets(model)))

    def reset_region(self, model, region):
        """Back to the head's own region."""
        editing.region_basis(model, region)  # an unknown region fails before anything changes
        self.region_codes.pop(region, None)
        self.slider_values[region] = [0.0] * editing.REGION_SLIDERS

    def _replace_region(self, region, codes):
        self.region_codes[region] = np.asarray(codes, np.float32).ravel()
        self.slider_values[region] = [0.0] * editing.REGION_SLIDERS

    # --- expressions ---------------------------------------------------------------------------------
    def expression(self, model):
        """(E,) float32 expression values over model.expression_names."""
        unknown = sorted(set(self.expression_values) - set(model.expression_names))
        if unknown:
            raise ImHeadError(f"this model has no expression {', '.join(unknown)}; its expressions are "
                              f"{', '.join(model.expression_names)}")
        return np.array([self.expression_values.get(n, 0.0) for n in model.expression_names], np.float32)

    def set_expression(self, model, values):
        """Set expression values {name: value in [0, 1]} (the others stay); a preset: set_preset."""
        for name, value in values.items():
            if name not in model.expression_names:
                raise ImHeadError(f"this model has no expression {name!r}; its expressions are "
                                  f"{', '.join(model.expression_names)}")
            if not 0.0 <= float(value) <= 1.0:
                raise ImHeadError(f"expression values are 0..1; {name} was given {value}")
            self.expression_values[name] = float(value)
        self.expression_values = {name: value for name, value in self.expression_values.items() if value}

    def set_preset(self, model, preset):
        """Show a named expression preset (expressions.PRESETS) instead of the current expression."""
        weights = expressions.preset_weights(model.expression_names, preset)
        self.expression_values = {}
        self.set_expression(model, dict(zip(model.expression_names, weights.tolist())))

    # --- JSON ----------------------------------------------------------------------------------------
    def to_dict(self):
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "model_hash": self.model_hash,
                "seed": self.seed, "variation": self.variation, "resolution": self.resolution,
                "fitted_to": self.fitted_to, "identity": np.asarray(self.identity, np.float64).tolist(),
                "region_codes": {r: np.asarray(c, np.float64).tolist() for r, c in self.region_codes.items()},
                "slider_values": {r: list(v) for r, v in self.slider_values.items()},
                "expression_values": dict(self.expression_values), "fit": self.fit}

    @classmethod
    def from_dict(cls, data):
        """A HeadState from to_dict's dictionary; ImHeadError saying what is wrong with any other."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ImHeadError(f"not an imHead head's parameters (format {FORMAT!r} expected)")
        if data.get("format_version") != FORMAT_VERSION:
            raise ImHeadError(f"head parameters of version {data.get('format_version')} are not supported "
                              f"(this imHead reads version {FORMAT_VERSION})")
        try:
            return cls(str(data["model_hash"]), np.asarray(data["identity"], np.float32).reshape(-1),
                       int(data.get("seed", 0)), float(data.get("variation", 0.0)), int(data.get("resolution", 0)),
                       str(data.get("fitted_to", "")),
                       {str(r): np.asarray(c, np.float32).reshape(-1) for r, c in data.get("region_codes", {}).items()},
                       {str(r): [float(v) for v in values] for r, values in data.get("slider_values", {}).items()},
                       {str(n): float(v) for n, v in data.get("expression_values", {}).items()},
                       dict(data.get("fit", {})))
        except KeyError as exc:
            raise ImHeadError(f"head parameters without {exc}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise ImHeadError(f"malformed head parameters: {exc}") from exc

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path):
        """The HeadState in a JSON file; ImHeadError naming the file for anything unreadable."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ImHeadError(f"{path}: cannot read head parameters: {exc.strerror}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ImHeadError(f"{path}: not JSON: {exc}") from exc
        try:
            return cls.from_dict(data)
        except ImHeadError as exc:
            raise ImHeadError(f"{path}: {exc}") from exc


# --- meshes ----------------------------------------------------------------------------------------
def neutral_mesh(model, state, resolution, progress=None):
    """The edited head without expression (SurfaceMesh, model frame): what the add-on's mesh is."""
    state.check_model(model)
    surface = model.extract_mesh(state.identity, resolution=resolution, progress=progress,
                                 local_offsets=state.local_offsets(model))
    if len(surface.faces) == 0:
        raise ImHeadError(f"the model in {model.path} gives no surface for this head: is it a trained model?")
    return surface


def expressed_mesh(model, state, neutral):
    """The neutral mesh of the head moved to its expression (exact, as the add-on's Bake Current), same
    faces; the neutral mesh itself when the expression is neutral."""
    weights = state.expression(model)
    if not weights.any():
        return neutral
    return with_vertices(neutral, expressions.inverse_warp(model, state.identity, neutral.vertices,
                                                           expressions.mesh_edges(neutral.faces),
                                                           weights[None]).positions[0])


def with_vertices(mesh, vertices):
    """The mesh's faces on other positions of its vertices (N, 3): an expression of it; normals anew."""
    return SurfaceMesh(vertices, mesh.faces, vertex_normals(vertices, mesh.faces))


def head_mesh(model, state, resolution, progress=None):
    """The head as its state says: its edits, showing its expression (SurfaceMesh, model frame)."""
    return expressed_mesh(model, state, neutral_mesh(model, state, resolution, progress))


def bake_expressions(model, state, neutral, progress=None):
    """One mesh per expression of the model, the neutral mesh's vertices (N, 3) where that expression
    alone at 1 moves them: an expressions.InverseWarp (positions (E, N, 3)), what the add-on's shape
    keys are. progress(fraction) after each expression."""
    eye = np.eye(len(model.expression_names), dtype=np.float32)
    return expressions.inverse_warp(model, state.identity, neutral.vertices, expressions.mesh_edges(neutral.faces),
                                    eye, progress=progress)
