"""Two model files in one run: the waits an artist feels and the file size, so that new weights are held
to the bundled ones (issue #15's bars on 2 cores: Final <= 2 s, Preview <= 0.5 s, fit <= 15 s, model
file <= 30 MB).

    .venv/bin/python bench/bench_models.py --model weights/imhead-v2.npz [--baseline weights/imhead.npz]
                                           [--threads 2] [--repeats 3]

Tasks, each timed --repeats times, the two models taking turns: Final (identity --seed meshed at 256^3),
Preview (128^3), live preview (a nose edit of 2 standard deviations re-meshed at 128^3, the unedited field
remembered, as the region sliders do), and Fit to Scan (10,000 points of the model's first held-out head,
as model.evaluation.evaluate draws them, fast quality, then meshed at 256^3). Prints wall seconds (best
and median), CPU seconds and model / baseline ratios of the medians.
"""
import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_runtime import timed  # noqa: E402
from model import HeadModel  # noqa: E402
from model.evaluation.evaluate import evaluation_heads, fitted_mesh, scan_points  # noqa: E402
from model.runtime import editing, parallel  # noqa: E402


def tasks(model, seed):
    """(name, task) pairs for one model; each task returns (wall s, CPU s, result)."""
    identity = model.sample_identity(seed, 1.0)
    offsets = editing.set_region(editing.no_edit(model), model, "nose",
                                 editing.random_region_codes(model, "nose", 1, 2.0), identity)
    [(_, scanned)] = evaluation_heads(model, 1, n_train=0)["ict"]
    points, _ = scan_points(scanned, 10000, seed=0)

    def live_preview():
        model.extract_mesh(identity, resolution=128, remember=True)  # the head as shown before the edit
        return timed(lambda: model.extract_mesh(identity, resolution=128, local_offsets=offsets, remember=True))

    return [("Final 256^3", lambda: timed(lambda: model.extract_mesh(identity, resolution=256))),
            ("Preview 128^3", lambda: timed(lambda: model.extract_mesh(identity, resolution=128))),
            ("live preview 128^3", live_preview),
            ("Fit to Scan (fit, Final mesh)", lambda: timed(lambda: fitted_mesh(model, points, None, 256, 0, "fast")))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--baseline", default=str(ROOT / "weights" / "imhead.npz"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    parallel.set_threads(args.threads)
    models = {"baseline": HeadModel.load(args.baseline), "model": HeadModel.load(args.model)}
    print(f"load average before {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.threads} workers, "
          f"{args.repeats} repeats, identity seed {args.seed}")
    for side, path in (("baseline", args.baseline), ("model", args.model)):
        print(f"{side:8s} {path}: {Path(path).stat().st_size / 2**20:.1f} MiB, {models[side].hash[:12]}, "
              f"preset blend_parts {models[side].config.blend_parts}")
        models[side].extract_mesh(models[side].mean_identity(), resolution=32)  # warm-up: first calls, imports
    by_side = {side: tasks(model, args.seed) for side, model in models.items()}

    print("\ntask                             side      best s  median s   CPU s")
    for index, (name, _) in enumerate(by_side["model"]):
        wall = {side: [] for side in models}
        cpu = {side: [] for side in models}
        for _ in range(args.repeats):
            for side in models:
                seconds, used, _ = by_side[side][index][1]()
                wall[side].append(seconds)
                cpu[side].append(used)
        for side in models:
            print(f"{name:32s} {side:8s} {min(wall[side]):7.2f}  {statistics.median(wall[side]):8.2f}  "
                  f"{statistics.median(cpu[side]):6.2f}")
        print(f"{'':32s} model / baseline (median): "
              f"{statistics.median(wall['model']) / statistics.median(wall['baseline']):.2f}x")
    print(f"load average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
