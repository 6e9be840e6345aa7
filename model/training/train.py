"""Train imHead as an auto-decoder: one learned code per training head, the network shared.

    python -m model.training.train --config configs/compact.json --out weights/imhead.npz

A config file (JSON) has three sections: "model" (preset, ablation, field overrides), "data" (how many
heads, samples per head, seed) and "train" (steps, batch, learning rates, loss weights). Checkpoints are
written next to the output every `checkpoint_every` steps; running the same command again resumes.
With --processes N the batch is split over N processes (torch.distributed, gloo, on the CPU).
With --init MODEL --data NPZ it fine-tunes a trained model file on a data set of your own scans
(model/training/scan_data.py; docs/own-scans.md) instead of training from scratch.
"""
import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..data.build_dataset import build_dataset, data_version, dataset_path
from ..data.heads import KEYPOINTS_PATH
from ..runtime.config import make_config
from ..runtime.errors import ImHeadError
from ..runtime.frame import MM
from ..runtime.modelfile import load_model_file, save_model_file, state_dict_arrays
from ..runtime.progress import progress_bar
from .network import ImHeadNetwork, denormals_flushed, network_from_model_file

TRAIN_DEFAULTS = {
    "steps": 1000, "batch_heads": 8, "surface_points": 768, "near_points": 1024, "free_points": 512,
    "batch_expressions": 4, "expression_points": 512,
    "lr_network": 1e-3, "lr_codes": 2e-3, "lr_drops": [0.5, 0.75, 0.9], "lr_drop_factor": 0.3,
    "code_init_std": 0.01, "free_clamp": 0.1, "seed": 0, "checkpoint_every": 250, "threads": 0,
    "device": "cpu",
    "warp_steps": 0, "warp_batch": 8, "warp_points": 1024, "lr_warp": 1e-3, "warp_restart": False,
    "warp_sampling": "weighted",
    "loss_weights": {"surface": 3.0, "near": 1.0, "free": 0.3, "normal": 0.3, "eikonal": 0.05,
                     "keypoints": 1.0, "code_prior": 1e-4, "warp": 3.0, "expression_sdf": 1.0},
}
DATA_DEFAULTS = {"heads": 300, "seed": 0, "surface": 16384, "near": 16384, "free": 4096, "expressions": 2,
                 "anny_heads": 0, "flat_neck_cut": False}


# The second stage's choices (train_warp), each setting's first the default.
WARP_CHOICES = {"warp_restart": (False, "mlp", "basis"), "warp_sampling": ("weighted", "by_shape")}


def load_config(path):
    """A training config file, with every default filled in; ImHeadError for a warp choice it does not know."""
    raw = json.loads(Path(path).read_text())
    for setting, choices in WARP_CHOICES.items():
        value = raw.get("train", {}).get(setting, choices[0])
        if value not in choices:
            raise ImHeadError(f"{path}: train.{setting} is {value!r}; one of {', '.join(map(json.dumps, choices))}")
    return {"model": raw.get("model", {"preset": "compact"}),
            "data": {**DATA_DEFAULTS, **raw.get("data", {})},
            "train": {**TRAIN_DEFAULTS, **raw.get("train", {}),
                      "loss_weights": {**TRAIN_DEFAULTS["loss_weights"],
                                       **raw.get("train", {}).get("loss_weights", {})}}}


def model_config(settings):
    settings = dict(settings)
    return make_config(settings.pop("preset", "compact"), settings.pop("ablation", "full"), **settings)


def on_device(data, device):
    """The dataset's tensors moved to `device` (names and other entries as they are)."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in data.items()}


def load_dataset(data):
    """The training samples as float32 tensors; built (and cached) on first use."""
    return read_dataset(ensure_dataset(data))


def ensure_dataset(data, progress=None):
    """The path of the data set of config section `data`, built first where it is missing;
    progress(fraction) per head while it builds."""
    path = dataset_path(data)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".partial.npz")
        build_dataset(tmp, data["heads"], data["seed"], data["surface"], data["near"], data["free"],
                      data["expressions"], progress=progress, anny_heads=data["anny_heads"],
                      flat_neck_cut=data["flat_neck_cut"])
        tmp.replace(path)
    return path


def read_dataset(path):
    """A data set file's samples as float32 tensors (its integer arrays as they are), and expression_names."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items() if v.dtype.kind in "fi" and v.ndim > 0}
    tensors["expression_names"] = [str(s) for s in arrays["expression_names"]]
    return tensors


def fine_tune_config(config, init, data):
    """The config, to fine-tune the model file `init` on the scan data set `data` (model/training/
    scan_data.py) instead of training from scratch: its "fine_tune" section names both, and their contents'
    digests, so that a checkpoint resumes only the same. The model section is then unused: the network is
    the model file's."""
    digest = hashlib.sha256(Path(data).read_bytes()).hexdigest()[:16]
    return {**config, "fine_tune": {"init": str(init), "init_hash": load_model_file(init)[0]["hash"],
                                    "data": str(data), "data_sha256": digest}}


def read_scan_dataset(fine_tune, init_header, settings):
    """The scan data set of a fine_tune section as read_dataset has it; ImHeadError when its scans were
    fitted with another model than the one to fine-tune (their codes are that model's), or it holds
    fewer scans than a batch's heads."""
    with np.load(fine_tune["data"], allow_pickle=False) as npz:
        fitted_with = str(npz["model_hash"]) if "model_hash" in npz.files else None
    if fitted_with != init_header["hash"]:
        raise ImHeadError(f"{fine_tune['data']}: its scans were fitted with the model {fitted_with}, not with "
                          f"{fine_tune['init']} ({init_header['hash']}): build it with --model {fine_tune['init']}")
    data = read_dataset(fine_tune["data"])
    if settings["batch_heads"] > len(data["surface"]):
        raise ImHeadError(f"{fine_tune['data']} holds {len(data['surface'])} scans, fewer than a batch's "
                          f"{settings['batch_heads']} heads: lower train.batch_heads in the config")
    return data


def columns(rng, n_rows, n_available, count, device):
    """count random sample indices for each of n_rows rows."""
    return torch.from_numpy(rng.integers(0, n_available, size=(n_rows, count))).to(device)


def sdf_and_gradient(net, points, codes, expression=None):
    points = points.requires_grad_(True)
    sdf = net(points, codes, expression)
    gradient, = torch.autograd.grad(sdf, points, torch.ones_like(sdf), create_graph=True)
    return sdf, gradient


def training_step(net, codes, data, rng, settings, share=(0, 1)):
    """All loss terms for one random batch; returns (total, {name: value}). share = (rank, ranks): every
    rank draws the whole batch (the same random numbers as one process) and takes the loss terms over
    its rows rank, rank + ranks, ... of it (all of it in one process)."""
    w = settings["loss_weights"]
    n_heads, device = data["surface"].shape[0], data["surface"].device
    mine = slice(share[0], None, share[1])
    heads = torch.as_tensor(rng.choice(n_heads, size=settings["batch_heads"], replace=False), device=device)
    surface_columns = columns(rng, len(heads), data["surface"].shape[1], settings["surface_points"], device)
    near_columns = columns(rng, len(heads), data["near"].shape[1], settings["near_points"], device)
    free_columns = columns(rng, len(heads), data["free"].shape[1], settings["free_points"], device)
    heads, surface_columns, near_columns, free_columns = (
        drawn[mine] for drawn in (heads, surface_columns, near_columns, free_columns))
    rows = heads[:, None]
    surface, normals = data["surface"][rows, surface_columns], data["normals"][rows, surface_columns]
    near, near_sdf = data["near"][rows, near_columns], data["near_sdf"][rows, near_columns]
    free, free_sdf = data["free"][rows, free_columns], data["free_sdf"][rows, free_columns]

    code = codes(heads)
    # Gradients (second order, the costly part) only where they are supervised: normals on the surface,
    # the eikonal term on the surface and in free space.
    sdf, gradient = sdf_and_gradient(net, torch.cat([surface, free], 1), code)
    n_s = surface.shape[1]
    clamp = settings["free_clamp"]
    terms = {
        "surface": sdf[:, :n_s].abs().mean(),
        "near": (net(near, code) - near_sdf).abs().mean(),
        "free": (sdf[:, n_s:].clamp(-clamp, clamp) - free_sdf.clamp(-clamp, clamp)).abs().mean(),
        "normal": (1 - torch.nn.functional.cosine_similarity(gradient[:, :n_s], normals, dim=-1)).mean(),
        "eikonal": ((gradient.norm(dim=-1) - 1) ** 2).mean(),
        "keypoints": (net.keypoints(net.split_code(code)[0]) - data["keypoints"][heads]).norm(dim=-1).mean(),
        "code_prior": code.pow(2).sum(-1).mean(),
    }
    n_expressed = data["exp_head"].shape[0]
    if settings["batch_expressions"] and n_expressed:
        chosen = torch.as_tensor(rng.choice(n_expressed, size=min(settings["batch_expressions"], n_expressed),
                                            replace=False), device=device)
        count = settings["expression_points"]
        surface_columns = columns(rng, len(chosen), data["exp_observed"].shape[1], count, device)
        near_columns = columns(rng, len(chosen), data["exp_near"].shape[1], count, device)
        chosen, surface_columns, near_columns = (drawn[mine] for drawn in (chosen, surface_columns, near_columns))
        exp_rows = chosen[:, None]
        observed = data["exp_observed"][exp_rows, surface_columns]
        canonical = data["exp_canonical"][exp_rows, surface_columns]
        exp_near, exp_near_sdf = data["exp_near"][exp_rows, near_columns], data["exp_near_sdf"][exp_rows, near_columns]
        exp_code = codes(data["exp_head"][chosen].long())
        weights = data["exp_weights"][chosen]
        warped = net.warp_to_canonical(observed, exp_code, weights)
        terms["warp"] = (warped - canonical).norm(dim=-1).mean()
        terms["expression_sdf"] = (net(exp_near, exp_code, weights) - exp_near_sdf).abs().mean()
    total = sum(w[name] * value for name, value in terms.items())
    return total, {name: float(value.detach()) for name, value in terms.items()}


def template_keypoints(data):
    return data["keypoints"].mean(0).cpu().numpy()


def learning_rate_factor(step, settings):
    drops = sum(step >= fraction * settings["steps"] for fraction in settings["lr_drops"])
    return settings["lr_drop_factor"] ** drops


@denormals_flushed()
def train(config, out_path, progress=None, checkpoint_path=None, share=(0, 1)):
    """Train from a loaded config (see load_config) and write the model file to out_path.

    progress(step, steps, losses) is called after every step. Returns the training summary dict.
    share = (rank, ranks): this process is one of `ranks` in a torch.distributed group (train_distributed);
    rank 0 reports progress, writes the checkpoints and the model file and returns the summary, the
    others return None.
    """
    settings, fine_tune = config["train"], config.get("fine_tune")
    rank, ranks = share
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    torch.manual_seed(settings["seed"])
    rng = np.random.default_rng(settings["seed"])
    device = torch.device(settings["device"])
    if fine_tune:
        init = load_model_file(fine_tune["init"])
        data = on_device(read_scan_dataset(fine_tune, init[0], settings), device)
    else:
        data = on_device(load_dataset(config["data"]), device)
    n_heads = data["surface"].shape[0]
    check_batch_splits(settings, data["exp_head"].shape[0], ranks)

    if fine_tune:  # the model file's network, and each scan's code where its fit left it
        net = network_from_model_file(*init).train().to(device)
        codes = torch.nn.Embedding.from_pretrained(data["codes"].clone(), freeze=False).to(device)
    else:
        cfg = model_config(config["model"])
        net = ImHeadNetwork(cfg, template_keypoints(data)).to(device)
        codes = torch.nn.Embedding(n_heads, cfg.code_dim).to(device)
        torch.nn.init.normal_(codes.weight, 0.0, settings["code_init_std"])
    optimizer = torch.optim.Adam([{"params": net.parameters(), "lr": settings["lr_network"]},
                                  {"params": codes.parameters(), "lr": settings["lr_codes"]}])
    base_lrs = [settings["lr_network"], settings["lr_codes"]]
    checkpoint_path = Path(checkpoint_path or Path(out_path).with_suffix(".checkpoint.pt"))
    step, elapsed = 0, 0.0
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=True, map_location=device)
        check_checkpoint_matches(checkpoint_path, state, config)
        net.load_state_dict(state["network"])
        codes.load_state_dict(state["codes"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        rng = np.random.default_rng([settings["seed"], step])
        torch.manual_seed(settings["seed"] + step)

    losses = {}
    started = time.perf_counter() - elapsed
    while step < settings["steps"]:
        for group, lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr * learning_rate_factor(step, settings)
        optimizer.zero_grad(set_to_none=True)
        total, losses = training_step(net, codes, data, rng, settings, share)
        total.backward()
        if ranks > 1:
            losses = average_over_ranks([*net.parameters(), *codes.parameters()], losses, ranks)
        optimizer.step()
        step += 1
        if progress is not None and rank == 0:
            progress(step, settings["steps"], losses)
        # The last step's checkpoint too: a run stopped in the warp stage resumes there.
        if step % settings["checkpoint_every"] == 0 or step == settings["steps"]:
            if rank == 0:
                save_atomically({"network": net.state_dict(), "codes": codes.state_dict(),
                                 "optimizer": optimizer.state_dict(), "step": step,
                                 "config": resumable_config(config), "data_version": data_version(),
                                 "elapsed": time.perf_counter() - started}, checkpoint_path)
            rng = np.random.default_rng([settings["seed"], step])
            torch.manual_seed(settings["seed"] + step)

    if rank != 0:
        return None
    summary = {"steps": step, "seconds": round(time.perf_counter() - started, 1), "device": str(device),
               "threads": torch.get_num_threads(), "final_losses": losses, "heads": n_heads}
    summary["warp_stage"] = train_warp(net, codes.weight.detach(), data, settings, progress)
    trained_codes, template = codes.weight.detach().cpu(), None
    if fine_tune:  # the model file's codes stay: generate and fit sample the prior they span
        trained_codes = torch.cat([torch.from_numpy(init[1]["codes"]), trained_codes])
        template = init[1]["template_keypoints"]
    save_trained_model(out_path, net.cpu(), trained_codes, data, config, summary, template)
    checkpoint_path.unlink(missing_ok=True)
    return summary


def save_atomically(state, path):
    """torch.save to a file beside `path`, then renamed over it: a run killed while saving keeps the
    checkpoint before."""
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


# --- training in several processes ----------------------------------------------------------------
def check_batch_splits(settings, n_expressed, ranks):
    """ImHeadError unless the heads and the expressions of a batch split evenly over `ranks`: each rank's
    loss is the mean over its share, and only equal shares make the mean of those the whole batch's."""
    expressions = min(settings["batch_expressions"], n_expressed) if settings["batch_expressions"] else 0
    if settings["batch_heads"] % ranks or expressions % ranks:
        raise ImHeadError(f"--processes {ranks} must divide the batch: batch_heads is {settings['batch_heads']}, "
                          f"the expressions per batch {expressions}")


def average_over_ranks(parameters, losses, ranks):
    """Every parameter's gradient, and the loss terms, replaced by their mean over the ranks (each rank's
    are its equal share's mean): the whole batch's, as one process has them, but for float rounding. A
    parameter no term reached gets a zero gradient (the same set in every rank; Adam moves it by 0).
    Returns the averaged loss terms."""
    gradients = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    terms = torch.tensor(list(losses.values()), dtype=gradients[0].dtype, device=gradients[0].device)
    flat = torch.cat([g.reshape(-1) for g in gradients] + [terms])
    dist.all_reduce(flat)
    flat /= ranks
    *averaged, terms = flat.split([p.numel() for p in parameters] + [len(losses)])
    for parameter, gradient in zip(parameters, averaged):
        parameter.grad = gradient.view_as(parameter)
    return dict(zip(losses, terms.tolist()))


def train_distributed(config, out_path, ranks, checkpoint_path=None):
    """train() in `ranks` spawned processes (torch.distributed, gloo), the batch split over them: the same
    batches and the same effective batch as one process, gradients averaged over the ranks. Rank 0
    prints the progress. Returns rank 0's summary; ImHeadError when a rank fails (the others are ended)."""
    context = multiprocessing.get_context("spawn")
    summaries = context.SimpleQueue()
    with tempfile.TemporaryDirectory(prefix="imhead-train-") as folder:
        rendezvous = f"file://{Path(folder) / 'rendezvous'}"
        processes = [context.Process(target=train_rank, args=(rank, ranks, rendezvous, config, out_path,
                                                              checkpoint_path, summaries)) for rank in range(ranks)]
        for process in processes:
            process.start()
        try:
            # One look per round: a rank that ends between two looks would leave wait() an empty list,
            # which blocks forever.
            while running := [process for process in processes if process.exitcode is None]:
                wait([process.sentinel for process in running])
                failed = [rank for rank, process in enumerate(processes) if process.exitcode not in (None, 0)]
                if failed:
                    raise ImHeadError(f"training process {failed[0]} of {ranks} failed (exit code "
                                      f"{processes[failed[0]].exitcode}); its error is above")
        finally:
            for process in processes:
                process.terminate()
                process.join()
    return summaries.get()


def train_rank(rank, ranks, rendezvous, config, out_path, checkpoint_path, summaries):
    """One rank of train_distributed, in its own process: its share of the cores unless the config says."""
    if not config["train"]["threads"]:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // ranks))
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=ranks)
    try:
        summary = train(config, out_path, progress_printer() if rank == 0 else None, checkpoint_path, (rank, ranks))
    finally:
        dist.destroy_process_group()
    if rank == 0:
        summaries.put(summary)


# The settings a resumed run may change; a checkpoint resumes only the same others. These change how fast a
# run goes, or only its second stage (train_warp), which starts from the first's end and is never checkpointed.
SPEED_SETTINGS = ("threads", "device", "checkpoint_every")
WARP_SETTINGS = ("warp_steps", "warp_batch", "warp_points", "lr_warp", "warp_restart", "warp_sampling")


def resumable_config(config):
    """The config without the settings that a resumed run may change (SPEED_SETTINGS, WARP_SETTINGS)."""
    return {**config, "train": {k: v for k, v in config["train"].items()
                                if k not in SPEED_SETTINGS + WARP_SETTINGS}}


def check_checkpoint_matches(path, state, config):
    """ImHeadError when the checkpoint at `path` was written by a run of another config or data version."""
    if state.get("data_version", data_version()) != data_version():  # older checkpoints did not record it
        raise ImHeadError(f"the checkpoint {path} was trained on data version {state['data_version']}, but the "
                          f"data builder and files now make version {data_version()}: restore the data code it "
                          f"was made with, or delete the checkpoint to start afresh")
    saved, wanted = state.get("config"), resumable_config(config)
    if saved is not None:  # data settings added since (the all-ages set) take their defaults
        saved = resumable_config({**saved, "data": {**DATA_DEFAULTS, **saved.get("data", {})}})
    if saved == wanted:
        return
    if saved is None:
        raise ImHeadError(f"the checkpoint {path} does not say which config wrote it; delete it to start afresh")
    differences = sorted(f"{section}.{key}" for section in set(saved) | set(wanted)
                         for key in set(saved.get(section, {})) | set(wanted.get(section, {}))
                         if saved.get(section, {}).get(key) != wanted.get(section, {}).get(key))
    raise ImHeadError(f"the checkpoint {path} was written with another config (differs in "
                      f"{', '.join(differences)}): run with that config, or delete the checkpoint to start afresh")


def train_warp(net, codes, data, settings, progress=None):
    """Second stage: the expression warp alone, on the data's dense correspondences.

    warp_sampling "weighted": random expressed heads and points, each point weighted by how far its
    expression moves it (plus 1 mm): most of a head does not move, so a plain mean over points rewards a warp
    that ignores the expression. "by_shape": each batch draws warp_batch distinct expression shapes and, for
    each, an expressed head the shape is active in; half of its points where the expression moves the surface,
    half anywhere; the plain mean distance. The eye and brow shapes move a few hundred of 16,384 points in one
    expressed head of twenty: drawn at random, a batch seldom shows them.
    With warp_restart ("mlp" or "basis", the form of ModelConfig.warp_basis) the warp starts anew: trained in
    the first stage, the MLP warp's last hidden layer is dead (no unit above zero) at the eyes and brows, and
    no gradient reaches them there again; a displacement basis learns them (runs/v2/README.md, "Why the warp
    never moves eyes and brows").
    """
    n_expressed, steps = data["exp_head"].shape[0], settings["warp_steps"]
    if not steps or not n_expressed:
        return {}
    started = time.perf_counter()
    if settings["warp_restart"]:
        torch.manual_seed(settings["seed"])  # the same new warp after the first stage as with --warp-only
        net.config = replace(net.config, warp_basis=settings["warp_restart"] == "basis")
        net.start_warp()
        net.to(codes.device)
    rng = np.random.default_rng([settings["seed"], 1])
    draw = (warp_batch_by_shape if settings["warp_sampling"] == "by_shape" else warp_batch_weighted)(data, rng, settings)
    optimizer = torch.optim.Adam(net.warp_parameters(), settings["lr_warp"])
    name = "weighted_warp" if settings["warp_sampling"] == "weighted" else "warp"
    for step in range(steps):
        chosen, picked, weight = draw()
        rows = chosen[:, None]
        observed, canonical = data["exp_observed"][rows, picked], data["exp_canonical"][rows, picked]
        if weight is None:
            weight = (observed - canonical).norm(dim=-1) + 0.005
        warped = net.warp_to_canonical(observed, codes[data["exp_head"][chosen].long()], data["exp_weights"][chosen])
        loss = ((warped - canonical).norm(dim=-1) * weight).sum() / weight.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, steps, {name: loss.item()})
    return {"steps": steps, "seconds": round(time.perf_counter() - started, 1), name: loss.item()}


def warp_batch_weighted(data, rng, settings):
    """draw() -> (expressed heads (B,), their points (B, warp_points), None: weighted by the move)."""
    n_expressed, n_points = data["exp_observed"].shape[:2]
    device = data["exp_observed"].device

    def draw():
        chosen = torch.as_tensor(rng.choice(n_expressed, size=min(settings["warp_batch"], n_expressed),
                                            replace=False), device=device)
        return chosen, columns(rng, len(chosen), n_points, settings["warp_points"], device), None
    return draw


def warp_batch_by_shape(data, rng, settings):
    """draw() -> (expressed heads (B,), their points (B, warp_points), equal weights): B distinct shapes, an
    expressed head each that the shape is active in; half the points where that head's expression moves the
    surface over 0.1 mm."""
    n_points, device = data["exp_observed"].shape[1], data["exp_observed"].device
    weights = data["exp_weights"].cpu().numpy()
    heads_of_shape = [rows for rows in (np.flatnonzero(column > 0) for column in weights.T) if len(rows)]
    moving = ((data["exp_observed"] - data["exp_canonical"]).norm(dim=-1) > 0.1 * MM).float() + 1e-6
    generator = torch.Generator(device).manual_seed(int(rng.integers(2 ** 62)))
    count = settings["warp_points"]

    def draw():
        shapes = rng.choice(len(heads_of_shape), size=min(settings["warp_batch"], len(heads_of_shape)), replace=False)
        chosen = torch.as_tensor([rng.choice(heads_of_shape[k]) for k in shapes], device=device)
        on_moving = torch.multinomial(moving[chosen], count // 2, replacement=True, generator=generator)
        picked = torch.cat([on_moving, columns(rng, len(chosen), n_points, count - count // 2, device)], 1)
        return chosen, picked, torch.ones(picked.shape, device=device)
    return draw


def save_trained_model(out_path, net, codes, data, config, summary, template=None):
    """Writes the model file; template: its template_keypoints (default: the data's mean keypoints)."""
    table = json.loads(KEYPOINTS_PATH.read_text())
    header = {"config": net.config.to_dict(), "keypoints": table["keypoints"], "regions": table["regions"],
              "expression_names": data["expression_names"], "training": {"config": config, **summary}}
    arrays = state_dict_arrays(net.state_dict())
    arrays["codes"] = codes.numpy().astype(np.float32)
    arrays["template_keypoints"] = (template_keypoints(data) if template is None else template).astype(np.float32)
    return save_model_file(out_path, header, arrays)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train an imHead model from a config file.")
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--warp-only", action="store_true",
                        help="run only the second stage (train_warp) on the model file at --out")
    parser.add_argument("--device", help="torch device to train on, e.g. cuda (default: the config's, cpu)")
    parser.add_argument("--checkpoint", help="where to keep the checkpoint (default: next to --out, "
                                             "<out>.checkpoint.pt); the same command with it resumes the run")
    parser.add_argument("--init", metavar="MODEL", help="fine-tune this model file (e.g. weights/imhead.npz) on "
                        "--data instead of training from scratch: its network, and a code per scan from its fit")
    parser.add_argument("--data", metavar="NPZ", help="with --init: the scan data set to fine-tune on "
                        "(python -m imhead build-scan-data, with the same model)")
    parser.add_argument("--snapshot", action="store_true",
                        help="write the model file --out from --checkpoint as it stands, without training (to "
                             "evaluate a long run midway; the run resumes from the checkpoint as before)")
    parser.add_argument("--processes", type=int, default=1,
                        help="split each batch over this many processes (torch.distributed, gloo; default 1); "
                             "the same batches, so a checkpoint resumes with any count")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if (args.init is None) != (args.data is None):
        parser.error("--init and --data go together: fine-tune the model file --init on the scans of --data")
    if args.init and args.warp_only:
        parser.error("--warp-only trains on the synthetic expressions; a scan data set has none")
    if args.snapshot and (args.checkpoint is None or args.init or args.warp_only):
        parser.error("--snapshot writes the model file of a run's --checkpoint (not with --init or --warp-only)")
    if args.init:
        config = fine_tune_config(config, args.init, args.data)
    if args.device:
        config["train"]["device"] = args.device
    if not args.init:  # a long build says how far it is (the steps' progress starts after it)
        data = config["data"]
        ensure_dataset(data, progress_bar(data["heads"] + data["anny_heads"], "heads", label="data set"))
    if args.snapshot:
        summary = snapshot(config, args.out, args.checkpoint)
    elif args.warp_only:
        summary = warp_only(config, args.out, progress_printer())
    elif args.processes > 1:
        summary = train_distributed(config, args.out, args.processes, args.checkpoint)
    else:
        summary = train(config, args.out, progress=progress_printer(), checkpoint_path=args.checkpoint)
    print(json.dumps(summary, indent=1))


def progress_printer(lines=200, label=""):
    """progress(step, steps, losses) that prints a line about `lines` times a run, after `label`: time spent
    on the steps, ETA, losses. Timed from the first step reported, so that building or loading the data set
    and a resumed run's earlier steps do not count (a resumed v2 run once printed a 9-day ETA); a step that
    does not follow the last is the second stage's first, timed anew."""
    start = first_step = last_step = None

    def report(step, steps, losses):
        nonlocal start, first_step, last_step
        if start is None or step <= last_step:
            start, first_step = time.perf_counter(), step
        last_step = step
        every = max(1, steps // lines)
        if step % every and step != steps:
            return
        spent = time.perf_counter() - start
        eta = f"{spent / (step - first_step) * (steps - step):.0f}s" if step > first_step else "--"
        shown = " ".join(f"{k}={v:.4g}" for k, v in losses.items())
        print(f"{label}step {step}/{steps}  {spent:.0f}s  eta {eta}  {shown}", flush=True)
    return report


def snapshot(config, out_path, checkpoint_path):
    """The model file of a run's checkpoint as it stands (the first stage's warp; the run itself goes on
    from the checkpoint): a long run looked at midway. Returns the summary it records."""
    state = torch.load(checkpoint_path, weights_only=True, map_location="cpu")
    check_checkpoint_matches(checkpoint_path, state, config)
    data = load_dataset(config["data"])
    net = ImHeadNetwork(model_config(config["model"]), template_keypoints(data))
    net.load_state_dict(state["network"])
    summary = {"steps": state["step"], "seconds": round(state["elapsed"], 1), "snapshot_of": str(checkpoint_path)}
    save_trained_model(out_path, net, state["codes"]["weight"], data, config, summary)
    return summary


@denormals_flushed()
def warp_only(config, path, progress=None):
    """The second stage on a model file written by the first (what train() does after its main loop)."""
    settings = config["train"]
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    device = torch.device(settings["device"])
    header, arrays = load_model_file(path)
    net = network_from_model_file(header, arrays).to(device)
    data = on_device(load_dataset(config["data"]), device)
    codes = torch.as_tensor(arrays["codes"], device=device)
    summary = {k: v for k, v in header.get("training", {}).items() if k != "config"}
    summary["warp_stage"] = train_warp(net, codes, data, settings, progress)
    save_trained_model(path, net.cpu(), codes.cpu(), data, config, summary)
    return summary


if __name__ == "__main__":
    sys.exit(main())
