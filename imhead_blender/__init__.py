"""The bridge between the imHead model and Blender's scene (no UI here)."""
from ..model import ImHeadError
from ..model.runtime.expressions import EXPRESSION_GROUPS
from ..model.runtime.expressions import PRESETS as EXPRESSION_PRESETS
from ..model.runtime.expressions import expression_groups
from .editing import (REGION_SLIDERS, Remesh, copy_region, head_model, hide_keypoints, keypoint_empties,
                      mesh_is_current, randomize_region, read_sliders, region_names, region_slider_count,
                      reset_region, show_keypoints, write_sliders)
from .generate import generate_head, place_head, sample_head
from .heads import is_head, read_identity
from .live import finish_previews, request_preview
from .meshes import ARTIST, IMPLICIT
from .models import bundled_model_path, load_model
from .shape_keys import (ExpressionBake, bake_exact_expression, bake_expressions, expression_keys,
                         expression_values, import_expression_animation, preset_weights, set_expression_values)

__all__ = [
    "ARTIST", "EXPRESSION_GROUPS", "IMPLICIT", "EXPRESSION_PRESETS", "REGION_SLIDERS", "ExpressionBake", "Remesh",
    "ImHeadError", "bake_exact_expression",
    "bake_expressions", "bundled_model_path", "copy_region", "expression_groups", "expression_keys",
    "expression_values", "finish_previews", "generate_head", "head_model", "hide_keypoints",
    "import_expression_animation", "is_head", "keypoint_empties", "load_model", "mesh_is_current", "place_head",
    "preset_weights", "randomize_region", "read_identity", "read_sliders", "region_names", "sample_head",
    "region_slider_count", "request_preview", "reset_region", "set_expression_values",
    "show_keypoints", "write_sliders",
]
