"""Building the training data (offline, never in Blender): the ICT and Anny heads, the neck cut,
surface and expression samples, the data set and its report; keypoints.json, the template's keypoints.
May import model.runtime (and scipy, libigl, anny, trimesh, torch); not model.training nor
model.evaluation, except data_report's command, which reads a training config (training.train.load_config)."""
