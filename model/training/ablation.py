"""Reproduce the paper's ablation study (supplementary Table 1) on our data, with one command.

    python -m model.training.ablation --config configs/ablation.json --out docs/ablation

Every variant gets the same data, steps, batch, schedule and seed (the config file's), only its
`model.training.ablation` differs; each is then fitted to the same held-out heads and scored like
model.evaluation.evaluate. Writes <out>.md (the table, with the command and commit that produced it) and
<out>.json. --steps overrides the budget and --device trains elsewhere: a longer run on a GPU machine is
`--steps 20000 --device cuda` (fitting and scoring stay on the CPU).
"""
import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path


from ..data.build_dataset import test_identities
from ..data.heads import HeadData
from ..evaluation.evaluate import fitted_mesh, mean_row, scan_points
from ..evaluation.metrics import compare_surfaces
from ..runtime import HeadModel
from ..runtime.config import ABLATIONS
from ..runtime.frame import MODEL_UNIT_M
from .train import load_config, model_config, train

LABELS = {"local_312": "w. local latents (39 × 8)", "local_1248": "w. local latents (39 × 32)",
          "local_global_1344": "w. local + global latents", "no_fusion": "w/o FusionNet",
          "no_local_canonical": "w/o local canonical space", "full": "imHead (full)"}


def run(config, variants, runs_dir, n_heads, resolution, quality, progress=print):
    """Train and score each variant; returns a list of result rows."""
    truths = [HeadData().head(w) for w in test_identities(n_heads)]
    rows = []
    for variant in variants:
        variant_config = copy.deepcopy(config)
        variant_config["model"]["ablation"] = variant
        path = Path(runs_dir) / f"{variant}.npz"
        started = time.perf_counter()
        summary = train(variant_config, path)
        model = HeadModel.load(path)
        scores = []
        for i, truth in enumerate(truths):
            points, _ = scan_points(truth, 10000, seed=i)
            mesh, _ = fitted_mesh(model, points, None, resolution, i, quality)
            scores.append(compare_surfaces(mesh.vertices / MODEL_UNIT_M, mesh.faces, truth.vertices, truth.faces))
        cfg = model_config(variant_config["model"])
        rows.append({"variant": variant, "label": LABELS[variant], **mean_row(scores),
                     "latent_size": cfg.code_dim,
                     "parameters": int(sum(a.size for name, a in model.arrays.items() if name.startswith("param/"))),
                     "train_seconds": summary["seconds"], "total_seconds": round(time.perf_counter() - started, 1)})
        progress(f"{variant}: {rows[-1]}")
    return rows


def markdown(rows, command, commit, settings):
    lines = [f"Produced by `{command}` at commit `{commit}`.", "",
             f"Budget (identical for every variant): {settings}.", "",
             "| variant | latent size | parameters | Chamfer (mm) ↓ | normal consistency ↑ | F@1mm ↑ | F@5mm ↑ "
             "| training (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['latent_size']} | {r['parameters']:,} | {r['chamfer_mm']:.3f} | "
                     f"{r['normal_consistency']:.4f} | {r['f_score_1mm']:.3f} | {r['f_score_5mm']:.4f} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/ablation.json")
    parser.add_argument("--out", default="docs/ablation")
    parser.add_argument("--runs", default="runs/ablation")
    parser.add_argument("--variants", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    parser.add_argument("--steps", type=int, default=None, help="override the config's training steps")
    parser.add_argument("--device", help="torch device to train on, e.g. cuda for a longer run on a GPU")
    parser.add_argument("--heads", type=int, default=5, help="held-out heads each variant is fitted to")
    parser.add_argument("--resolution", type=int, default=192)
    parser.add_argument("--quality", default="fast")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.steps:
        config["train"]["steps"] = args.steps
    if args.device:
        config["train"]["device"] = args.device
    # The commit this run's code comes from: taken before the hour of training, not after it.
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = run(config, args.variants, args.runs, args.heads, args.resolution, args.quality)
    command = "python -m model.training.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    settings = (f"{config['train']['steps']} steps, {config['train']['batch_heads']} heads per step, seed "
                f"{config['train']['seed']}, {config['data']['heads']} training heads; fitted to {args.heads} "
                f"held-out heads ({args.quality}), meshed at {args.resolution}^3")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"command": command, "commit": commit, "settings": settings,
                                                    "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(markdown(rows, command, commit, settings))
    print(markdown(rows, command, commit, settings))
    return rows


if __name__ == "__main__":
    main()
