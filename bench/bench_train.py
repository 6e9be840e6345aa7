"""Training speed: one process (torch's threads on every core, `threads` 0) against `--processes N` (N
processes on one core each, the batch split over them), in one run, on a config's model and batch with a
small data set of its kind, so that the data set builds in a minute or two and loads in seconds.

    python bench/bench_train.py                                  # configs/v2.json, 8 + 8 heads, 40 steps
    python bench/bench_train.py --config configs/compact.json --heads 16 --anny-heads 0 --steps 60

Each setting trains from the same start for --steps steps (the first --warmup not timed) and prints its
seconds per step (wall), then its speed over the first setting's. The steps are the same batches either
way (tests/test_train.py checks the models agree to float rounding).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.training.train import ensure_dataset, load_config, train, train_distributed  # noqa: E402


def timed_run(config, processes, folder, warmup):
    """Seconds per step after the first `warmup` steps: the wall time of two runs that differ only in
    their step count, one of `warmup` steps and one of config's steps, so start-up and loading cancel."""
    times = []
    for steps in (warmup, config["train"]["steps"]):
        run = {**config, "train": {**config["train"], "steps": steps}}
        out = Path(folder) / f"p{processes}-{steps}.npz"
        start = time.perf_counter()
        if processes == 1:
            train(run, out)
        else:
            train_distributed(run, out, processes)
        times.append(time.perf_counter() - start)
    return (times[1] - times[0]) / (config["train"]["steps"] - warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "v2.json"))
    parser.add_argument("--heads", type=int, default=8, help="ICT heads of the small data set")
    parser.add_argument("--anny-heads", type=int, default=8, help="Anny heads of the small data set")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    config = load_config(args.config)
    config["data"].update(heads=args.heads, anny_heads=args.anny_heads)
    config["train"].update(steps=args.steps, checkpoint_every=10 ** 9, threads=0, warp_steps=0)
    ensure_dataset(config["data"])
    settings = [1, args.processes]
    print(f"{args.config}: model {config['model']}, batch of {config['train']['batch_heads']} heads, "
          f"{args.heads} + {args.anny_heads} heads, {args.steps} steps ({args.warmup} not timed)")
    with tempfile.TemporaryDirectory() as folder:
        per_step = [timed_run(config, processes, folder, args.warmup) for processes in settings]
    for processes, seconds in zip(settings, per_step):
        label = "one process, threads on every core" if processes == 1 else f"--processes {processes}"
        print(f"{label:38s} {seconds:6.3f} s/step   {per_step[0] / seconds:5.2f}x")


if __name__ == "__main__":
    main()
