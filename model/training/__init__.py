"""Training (offline, never in Blender): the torch network (also the reference the numpy runtime is
tested against), the training loop and the ablations. May import model.runtime and model.data (and
torch); model.evaluation only in the ablations, which evaluate what they train."""
