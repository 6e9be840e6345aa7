"""Evaluation (offline, never in Blender): fitting held-out heads and comparing surfaces (libigl).
May import model.runtime, model.data and model.training."""
