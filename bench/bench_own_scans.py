"""How close the scan data set's keypoints (the fitted model's) come to the true ones: held-out ICT heads
exported as a user's scans (OBJ, millimetres, Y up, a 30 mm hole in the crown, the neck left open), built
by `python -m imhead build-scan-data` (10,000 points), as in tests/test_own_scans.py.

    python bench/bench_own_scans.py --heads 4                    # weights/imhead.npz, quality best
    python bench/bench_own_scans.py --heads 4 --quality fast     # 150 steps: about 1.5 min a head on 2 cores

Prints each scan's fit (unit, residual, the fit's own scale, taken out of the data set's frame) and the
keypoints' mean, median and largest distance to the true keypoint vertices (mm), then over all scans.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import trimesh

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data.build_dataset import test_identities  # noqa: E402
from model.data.heads import HeadData  # noqa: E402
from model.runtime.frame import MM, model_to_file  # noqa: E402

HOLE_RADIUS_MM = 30


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "imhead.npz"))
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--quality", choices=("fast", "best"), default="best", help="the fit's")
    args = parser.parse_args()
    data = HeadData()
    heads = [data.head(weights) for weights in test_identities(args.heads)]
    with tempfile.TemporaryDirectory() as folder:
        scans = Path(folder) / "scans"
        scans.mkdir()
        for index, head in enumerate(heads):
            centroids = head.vertices[head.faces].mean(1)
            crown = head.vertices[head.vertices[:, 2].argmax()]
            deleted = (np.linalg.norm(centroids - crown, axis=1) < HOLE_RADIUS_MM * MM) | \
                (head.faces == len(head.vertices) - 1).any(1)  # HeadData's neck cap: a fan around the last vertex
            vertices = model_to_file(head.vertices).astype(np.float64) * 1000.0
            trimesh.Trimesh(vertices, head.faces[~deleted], process=False).export(scans / f"head{index}.obj")
        out = Path(folder) / "scans.npz"
        subprocess.run([sys.executable, "-m", "imhead", "build-scan-data", "--scans", str(scans), "--out", str(out),
                        "--model", args.model, "--quality", args.quality], check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
        with np.load(out) as built:
            built = {key: built[key] for key in built.files}
    errors = []
    for row, head in enumerate(heads):
        to_model = built["to_model"][row]
        on_scan = (built["keypoints"][row] - to_model[:3, 3]) @ np.linalg.inv(to_model[:3, :3]).T
        true = model_to_file(data.keypoints(head.vertices)).astype(np.float64) * 1000.0
        error = np.linalg.norm(on_scan - true, axis=1)
        errors.append(error)
        print(f"{built['scan_names'][row]}: keypoints {error.mean():.2f} mm mean, {np.median(error):.2f} median, "
              f"{error.max():.2f} largest ({data.keypoint_names[error.argmax()]})")
    errors = np.concatenate(errors)
    print(f"{args.heads} scans, quality {args.quality}: keypoints {errors.mean():.2f} mm mean, {np.median(errors):.2f} median, "
          f"{errors.max():.2f} largest")


if __name__ == "__main__":
    main()
