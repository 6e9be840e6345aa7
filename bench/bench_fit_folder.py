"""Fitting a folder of scans with `python -m imhead fit --input DIR --out DIR`: one process (its threads on
every core, the default) against `--processes 2` (two worker processes on one core each), in one run.
With --one-core, one process on one core (`--threads 1`) runs first and is the baseline: what processes
add over one core, where the default one process already spreads its threads over every core.

    python bench/bench_fit_folder.py                          # weights/imhead.npz, 20 scans, quality fast
    python bench/bench_fit_folder.py --one-core --processes 2 # one process on one core against two
    python bench/bench_fit_folder.py --model PATH --scans 4 --steps 20 --resolution 64

The scans are the model's own random heads (seeds 0, 1, ...; the vertices of each meshed at 128, in
millimetres): what the fit does not depend on. Each setting runs the command as a user does (its own
process: start-up and model loading counted) into a fresh folder. Prints per setting the wall seconds,
seconds per scan and CPU seconds (all processes), the largest difference of the fitted heads' residuals
from the first setting's, then each setting's speed over the first's, measured in this run.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import HeadModel  # noqa: E402
from model.runtime.frame import model_to_file  # noqa: E402

SCAN_RESOLUTION = 128


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "imhead.npz"))
    parser.add_argument("--scans", type=int, default=20)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                        help="the settings to compare; 1 is one process on every core (default: 1 2)")
    parser.add_argument("--one-core", action="store_true",
                        help="first run one process on one core (--threads 1), the baseline of the others")
    parser.add_argument("--quality", default="fast")
    parser.add_argument("--steps", type=int, help="refinement steps (overrides --quality)")
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--resolution", type=int, default=256, help="grid size of each fitted mesh (the CLI's default)")
    args = parser.parse_args()
    model = HeadModel.load(args.model)
    settings = {f"--processes {n}": ["--processes", str(n)] for n in args.processes}
    if args.one_core:
        settings = {"--threads 1": ["--threads", "1"], **settings}
    with tempfile.TemporaryDirectory(prefix="bench-fit-folder-") as work:
        seconds = measure(args, model, Path(work), settings)
    first, *others = settings
    for setting in others:
        print(f"{setting} against {first}: {seconds[first] / seconds[setting]:.2f}x as fast")


def measure(args, model, work, settings):
    """{setting: wall seconds} of fitting the scans, made in `work`, with each setting ({name: fit options})."""
    scans = work / "scans"
    scans.mkdir()
    for seed in range(args.scans):
        head = model.extract_mesh(model.sample_identity(seed, 1.0), resolution=SCAN_RESOLUTION)
        np.save(scans / f"head{seed:03d}.npy", model_to_file(head.vertices) * 1000.0)
    fit_options = ["--quality", args.quality, "--points", str(args.points), "--resolution", str(args.resolution),
                   "--model", args.model, "--quiet"] + (["--steps", str(args.steps)] if args.steps else [])
    print(f"model {args.model} ({model.hash[:12]}), {args.scans} scans (random heads meshed at {SCAN_RESOLUTION}, "
          f"mm), quality {args.quality}{f', {args.steps} steps' if args.steps else ''}, {args.points} points, "
          f"meshes at {args.resolution}")

    seconds, residuals = {}, {}
    first = next(iter(settings))
    for index, (setting, options) in enumerate(settings.items()):
        out = work / f"fitted-{index}"
        started, cpu_started = time.perf_counter(), children_cpu_seconds()
        completed = subprocess.run([sys.executable, "-m", "imhead", "fit", "--input", str(scans), "--out", str(out),
                                    *options, *fit_options], capture_output=True, text=True, cwd=ROOT)
        seconds[setting] = time.perf_counter() - started
        cpu = children_cpu_seconds() - cpu_started
        if completed.returncode != 0:
            sys.exit(f"{setting} failed:\n{completed.stdout}{completed.stderr}")
        rows = json.loads((out / "summary.json").read_text())["scans"]
        residuals[setting] = np.array([row["residual_mm"] for row in rows])
        difference = np.abs(residuals[setting] - residuals[first]).max()
        print(f"{setting}: {seconds[setting]:.1f} s wall, {seconds[setting] / args.scans:.2f} s per scan, "
              f"{cpu:.1f} s CPU; residual median {np.median(residuals[setting]):.3f} mm, largest difference "
              f"from {first} {difference:.4f} mm", flush=True)
    return seconds


if __name__ == "__main__":
    main()
