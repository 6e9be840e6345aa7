"""Reproduce the paper's ablation study (supplementary Table 1) on our data, with one command.

    python -m model.training.ablation --config configs/ablation.json --out docs/ablation

Every variant gets the same data, steps, batch, schedule and seed (the config file's), only its
`model.training.ablation` differs; each is then fitted to the same held-out heads (ICT, and Anny people
of every age when the config trains on them) and scored like model.evaluation.evaluate. Writes <out>.md
(the table, with the command and commit that produced it) and <out>.json. --steps overrides the budget
and --device trains elsewhere: a longer run on a GPU machine is `--steps 20000 --device cuda` (fitting
and scoring stay on the CPU).

A run of hours survives being stopped: each variant resumes from its checkpoint in --runs, and a scored
variant's row is kept there (<variant>.json) and reused while its config is the same. --jobs N trains N
variants at once, each in its own process (with a config of one thread, N jobs use N cores).
"""
import argparse
import copy
import json
import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..evaluation.evaluate import evaluation_heads, fitted_mesh, mean_row, scan_points
from ..evaluation.metrics import compare_surfaces
from ..runtime import HeadModel
from ..runtime.config import ABLATIONS
from ..runtime.frame import MODEL_UNIT_M
from .train import load_config, model_config, progress_printer, train

LABELS = {"local_312": "w. local latents (39 × 8)", "local_1248": "w. local latents (39 × 32)",
          "local_global_1344": "w. local + global latents", "no_fusion": "w/o FusionNet",
          "no_local_canonical": "w/o local canonical space", "full": "imHead (full)"}


def run(config, variants, runs_dir, n_heads, resolution, quality, jobs=1, progress=print):
    """Train and score each variant (`jobs` at once); returns their result rows in the order given."""
    arguments = [(config, variant, Path(runs_dir), n_heads, resolution, quality) for variant in variants]
    if jobs <= 1:
        rows = [run_variant(*a) for a in arguments]
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(run_variant, *zip(*arguments)))
    for row in rows:
        progress(f"{row['variant']}: {row}")
    return rows


def run_variant(config, variant, runs_dir, n_heads, resolution, quality):
    """Train one variant (resuming its checkpoint), fit it to the held-out heads and score it: its row,
    kept in <runs_dir>/<variant>.json and returned from there while the config is the same."""
    variant_config = copy.deepcopy(config)
    variant_config["model"]["ablation"] = variant
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{variant}.npz"
    kept = path.with_suffix(".json")
    if kept.exists():
        saved = json.loads(kept.read_text())
        if saved["config"] == variant_config and saved["scoring"] == [n_heads, resolution, quality]:
            return saved["row"]
    started = time.perf_counter()
    summary = train(variant_config, path, progress=progress_printer(lines=20, label=f"{variant}: "))
    model = HeadModel.load(path)
    heads = evaluation_heads(model, n_heads, anny_heads=n_heads if config["data"].get("anny_heads") else 0, n_train=0)
    scores = {source: [_fit_score(model, truth, i, resolution, quality) for i, (_, truth) in enumerate(heads[source])]
              for source in ("ict", "anny") if heads[source]}
    cfg = model_config(variant_config["model"])
    row = {"variant": variant, "label": LABELS[variant], **mean_row(scores["ict"]),
           "latent_size": cfg.code_dim,
           "parameters": int(sum(a.size for name, a in model.arrays.items() if name.startswith("param/"))),
           "train_seconds": summary["seconds"], "total_seconds": round(time.perf_counter() - started, 1)}
    if "anny" in scores:
        row["anny"] = mean_row(scores["anny"])
    kept.write_text(json.dumps({"config": variant_config, "scoring": [n_heads, resolution, quality], "row": row},
                               indent=1))
    return row


def _fit_score(model, truth, seed, resolution, quality):
    points, _ = scan_points(truth, 10000, seed=seed)
    mesh, _ = fitted_mesh(model, points, None, resolution, seed, quality)
    return compare_surfaces(mesh.vertices / MODEL_UNIT_M, mesh.faces, truth.vertices, truth.faces)


def markdown(rows, command, commit, settings):
    lines = [f"Produced by `{command}` at commit `{commit}`.", "",
             f"Budget (identical for every variant): {settings}.", ""]
    anny = all("anny" in r for r in rows)
    lines.append("| variant | latent size | parameters | Chamfer (mm) ↓ | normal consistency ↑ | F@1mm ↑ "
                 "| F@5mm ↑ " + ("| Anny: Chamfer (mm) ↓ | Anny: F@1mm ↑ " if anny else "") + "| training (s) |")
    lines.append("|---" * (10 if anny else 8) + "|")
    for r in rows:
        lines.append(f"| {r['label']} | {r['latent_size']} | {r['parameters']:,} | {r['chamfer_mm']:.3f} | "
                     f"{r['normal_consistency']:.4f} | {r['f_score_1mm']:.3f} | {r['f_score_5mm']:.4f} | "
                     + (f"{r['anny']['chamfer_mm']:.3f} | {r['anny']['f_score_1mm']:.3f} | " if anny else "")
                     + f"{r['train_seconds']:.0f} |")
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
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at once, each in its own process")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.steps:
        config["train"]["steps"] = args.steps
    if args.device:
        config["train"]["device"] = args.device
    # The commit this run's code comes from: taken before the hour of training, not after it.
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = run(config, args.variants, args.runs, args.heads, args.resolution, args.quality, args.jobs)
    command = "python -m model.training.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    data = config["data"]
    sources = f"{data['heads']} ICT" + (f" and {data['anny_heads']} Anny" if data.get("anny_heads") else "")
    settings = (f"{config['train']['steps']} steps, {config['train']['batch_heads']} heads per step, seed "
                f"{config['train']['seed']}, {sources} training heads; fitted to {args.heads} held-out heads "
                f"of each ({args.quality}), meshed at {args.resolution}^3")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"command": command, "commit": commit, "settings": settings,
                                                    "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(markdown(rows, command, commit, settings))
    print(markdown(rows, command, commit, settings))
    return rows


if __name__ == "__main__":
    main()
