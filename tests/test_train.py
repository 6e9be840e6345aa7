"""Training: the loss falls, runs resume from checkpoints exactly, the result is a closed head; the same
in two processes (--processes 2)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT

from model import HeadModel, ImHeadError
from model.runtime.meshing import connected_components, is_closed
from model.training import train as train_module
from model.training.train import load_config, train

CONFIG = "configs/tiny.json"


class Interrupted(Exception):
    pass


def train_until_interrupted(config, out, at_step):
    """train(config, out) stopped by its progress callback right after step at_step."""
    def stop(step, steps, terms):
        if step == at_step:
            raise Interrupted
    with pytest.raises(Interrupted):
        train(config, out, progress=stop)


def tiny_config(steps, checkpoint_every=1000):
    config = load_config(CONFIG)
    config["train"].update(steps=steps, checkpoint_every=checkpoint_every)
    return config


def test_loss_falls_and_the_result_is_a_closed_surface(tmp_path):
    losses = []
    train(tiny_config(120), tmp_path / "m.npz",
          progress=lambda step, steps, terms: losses.append(terms["near"] + terms["surface"]))
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    model = HeadModel.load(tmp_path / "m.npz")
    mesh = model.extract_mesh(model.mean_identity(), resolution=48)
    assert is_closed(mesh)
    assert connected_components(mesh) >= 1
    extent = mesh.vertices.max(0) - mesh.vertices.min(0)
    assert (extent > 0.5).all(), "a head-sized surface, not a speck"


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path):
    train(tiny_config(20, checkpoint_every=10), tmp_path / "straight.npz")

    train_until_interrupted(tiny_config(20, checkpoint_every=10), tmp_path / "resumed.npz", 15)
    assert (tmp_path / "resumed.checkpoint.pt").exists()
    train(tiny_config(20, checkpoint_every=10), tmp_path / "resumed.npz")
    assert not (tmp_path / "resumed.checkpoint.pt").exists()

    assert_same_weights(tmp_path / "straight.npz", tmp_path / "resumed.npz")


@pytest.mark.parametrize("restart,sampling", [(False, "weighted"), ("mlp", "weighted"), ("basis", "by_shape")])
def test_the_warp_stage_alone_reproduces_the_full_run(tmp_path, restart, sampling):
    """The bundled model's second stage was run with --warp-only on the first stage's file."""
    from model.training.train import warp_only
    both = tiny_config(10)
    both["train"].update(warp_steps=30, warp_restart=restart, warp_sampling=sampling)
    warp_losses = []
    train(both, tmp_path / "both.npz")
    train(tiny_config(10), tmp_path / "staged.npz")
    warp_only(both, tmp_path / "staged.npz", progress=lambda s, n, t: warp_losses.extend(t.values()))
    assert np.mean(warp_losses[-5:]) < np.mean(warp_losses[:5])
    assert_same_weights(tmp_path / "both.npz", tmp_path / "staged.npz")


def test_a_restarted_warp_owes_nothing_to_the_first_stages(tmp_path):
    from model.runtime.modelfile import load_model_file
    from model.training.network import network_from_model_file
    from model.training.train import load_dataset, train_warp
    config = tiny_config(10)
    config["train"].update(warp_steps=5, warp_restart="basis")
    train(tiny_config(10), tmp_path / "first.npz")
    header, arrays = load_model_file(tmp_path / "first.npz")
    data, codes = load_dataset(config["data"]), torch.as_tensor(arrays["codes"])
    trained = []
    for first_stage_scale in (1.0, 3.0):
        net = network_from_model_file(header, arrays)
        with torch.no_grad():
            net.warp[0].weight.mul_(first_stage_scale)
        train_warp(net, codes, data, config["train"])
        assert net.config.warp_basis and net.expression_lift is None
        trained.append(net.warp_parameters())
    for first, other in zip(*trained, strict=True):
        torch.testing.assert_close(first, other)


def test_a_run_stopped_in_the_warp_stage_resumes_there_to_the_same_model(tmp_path, monkeypatch):
    config = tiny_config(20, checkpoint_every=7)  # the last step, 20, is no multiple of 7
    config["train"]["warp_steps"] = 5
    train(config, tmp_path / "straight.npz")

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_warp", stopped)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed.npz")
    checkpoint = tmp_path / "resumed.checkpoint.pt"
    assert torch.load(checkpoint, weights_only=True)["step"] == 20
    monkeypatch.undo()
    train(config, tmp_path / "resumed.npz")
    assert not checkpoint.exists()

    assert any(name.startswith("param/warp") for name in weights(tmp_path / "straight.npz"))
    assert_same_weights(tmp_path / "straight.npz", tmp_path / "resumed.npz")


def test_a_checkpoint_resumes_only_its_own_config_and_data(tmp_path, monkeypatch):
    train_until_interrupted(tiny_config(20, checkpoint_every=5), tmp_path / "m.npz", 10)
    other = tiny_config(20, checkpoint_every=5)
    other["train"]["lr_network"] *= 2
    with pytest.raises(ImHeadError, match=r"another config \(differs in train.lr_network\)"):
        train(other, tmp_path / "m.npz")
    monkeypatch.setattr(train_module, "data_version", lambda: "another")  # what a changed data file makes
    with pytest.raises(ImHeadError, match="trained on data version .* now make version another"):
        train(tiny_config(20, checkpoint_every=5), tmp_path / "m.npz")
    monkeypatch.undo()
    # How often to checkpoint and the second stage's settings do not change the first stage's run.
    faster = tiny_config(20, checkpoint_every=7)
    faster["train"].update(threads=1, warp_steps=3, lr_warp=1e-4, warp_restart="basis")
    train(faster, tmp_path / "m.npz")
    assert not (tmp_path / "m.checkpoint.pt").exists()


def test_a_snapshot_is_the_checkpoints_model_and_the_run_goes_on(tmp_path):
    train_until_interrupted(tiny_config(20, checkpoint_every=10), tmp_path / "run.npz", 15)
    checkpoint = tmp_path / "run.checkpoint.pt"
    config = write_config(tmp_path / "run.json", 20, 10)
    train_module.main(["--config", str(config), "--out", str(tmp_path / "midway.npz"), "--checkpoint",
                       str(checkpoint), "--snapshot"])
    midway = HeadModel.load(tmp_path / "midway.npz")
    assert midway.header["training"]["steps"] == 10 and is_closed(midway.extract_mesh(midway.mean_identity(), resolution=32))
    state, arrays = torch.load(checkpoint, weights_only=True), np.load(tmp_path / "midway.npz")
    for name, tensor in state["network"].items():
        np.testing.assert_array_equal(arrays[f"param/{name}"], tensor.numpy(), err_msg=name)
    np.testing.assert_array_equal(arrays["codes"], state["codes"]["weight"].numpy())
    train(tiny_config(20, checkpoint_every=10), tmp_path / "run.npz")
    assert not checkpoint.exists()


# --- --processes: the batch split over torch.distributed (gloo) processes ----------------------------
def weights(path):
    model = np.load(path)
    return {name: model[name] for name in model.files if name.startswith("param/") or name == "codes"}


def assert_same_weights(path_a, path_b):
    a, b = weights(path_a), weights(path_b)
    for name in a:
        assert np.allclose(a[name], b[name], atol=1e-6), name


def largest_difference(a, b):
    return max(float(np.abs(a[name] - b[name]).max()) for name in a)


def write_config(path, steps, checkpoint_every):
    config = json.loads(Path(CONFIG).read_text())
    config["train"].update(steps=steps, checkpoint_every=checkpoint_every)
    path.write_text(json.dumps(config))
    return path


def train_command(config, out, *options, **popen):
    return subprocess.Popen([sys.executable, "-m", "imhead", "train", "--config", str(config), "--out", str(out),
                             *options], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.fixture(scope="module")
def straight_runs(tmp_path_factory):
    """20 steps (checkpoints every 5) in one process and in two: {processes: model file}."""
    folder = tmp_path_factory.mktemp("straight")
    config = write_config(folder / "config.json", 20, 5)
    runs = {count: train_command(config, folder / f"{count}.npz", "--processes", str(count)) for count in (1, 2)}
    for run in runs.values():
        assert run.wait(timeout=600) == 0, run.stderr.read()
    return {count: folder / f"{count}.npz" for count in runs}


def test_two_processes_train_on_the_same_batches_as_one(tmp_path, straight_runs):
    """The first step sees the same batch (loss terms equal to float rounding, the weights after it within
    1e-4 but where Adam magnifies rounding: it moves each weight by about the learning rate whatever the
    gradient's size, so a gradient within rounding of zero can move a weight differently; on an Intel
    Xeon one weight of the tiny model's moved 1.9e-4 apart, on AMD EPYC none over 1e-4). Over 20 steps
    that magnification adds up: measured 0.014, bounded at 0.05."""
    config = tiny_config(1)
    one = train(config, tmp_path / "one.npz")
    two = train_module.train_distributed(config, tmp_path / "two.npz", 2)
    assert two["final_losses"] == pytest.approx(one["final_losses"], rel=1e-5)
    first_one, first_two = weights(tmp_path / "one.npz"), weights(tmp_path / "two.npz")
    differences = np.concatenate([np.abs(first_one[name] - first_two[name]).ravel() for name in first_one])
    assert np.count_nonzero(differences > 1e-4) <= 3
    assert differences.max() < 2 * config["train"]["lr_network"]
    assert largest_difference(weights(straight_runs[1]), weights(straight_runs[2])) < 0.05

    uneven = tiny_config(1)
    uneven["train"]["batch_heads"] = 3
    with pytest.raises(ImHeadError, match="must divide the batch"):
        train(uneven, tmp_path / "uneven.npz", share=(0, 2))


def test_two_processes_killed_resume_to_the_same_model(tmp_path, straight_runs):
    config, out = write_config(tmp_path / "config.json", 20, 5), tmp_path / "killed.npz"
    checkpoint = tmp_path / "killed.checkpoint.pt"
    run = train_command(config, out, "--processes", "2", start_new_session=True)
    while not checkpoint.exists() and run.poll() is None:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the command and its two training processes
    run.wait()
    assert checkpoint.exists() and not out.exists()
    resumed = train_command(config, out, "--processes", "2")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    assert largest_difference(weights(straight_runs[2]), weights(out)) < 1e-6


def test_a_checkpoint_of_one_process_resumes_in_two(tmp_path, straight_runs):
    """A run checkpointed by the single-process path (the long runs) goes on with --processes 2."""
    train_until_interrupted(tiny_config(20, checkpoint_every=5), tmp_path / "m.npz", 12)
    train_module.train_distributed(tiny_config(20, checkpoint_every=5), tmp_path / "m.npz", 2)
    assert not (tmp_path / "m.checkpoint.pt").exists()
    assert largest_difference(weights(straight_runs[1]), weights(tmp_path / "m.npz")) < 0.05


def test_the_eta_counts_only_the_steps_of_this_run(capsys):
    report = train_module.progress_printer()
    time.sleep(1.0)  # the data set being built or loaded before the first step
    report(1501, 20000, {"surface": 0.1})
    time.sleep(0.01)
    report(1600, 20000, {"surface": 0.1})  # a printed step of a run resumed at step 1,500
    line = capsys.readouterr().out.strip()
    assert line.startswith("step 1600/20000") and "surface=0.1" in line
    eta = float(line.split("eta ")[1].split("s")[0])
    assert eta < 20  # timed from step 1501: about 2 s here; timed from the printer's start it read 186 s


def test_the_warp_stage_reports_its_own_steps_and_eta(capsys):
    report = train_module.progress_printer()
    report(20000, 20000, {"surface": 0.1})  # the first stage's last step
    time.sleep(1.0)  # the second stage setting up
    report(1, 10000, {"warp": 0.2})
    time.sleep(0.01)
    report(50, 10000, {"warp": 0.2})
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("step 50/10000") and "warp=0.2" in line
    assert float(line.split("eta ")[1].split("s")[0]) < 10  # about 2 s: timed from the stage's first step


def test_the_command_shows_the_data_set_build_before_the_steps(tmp_path, monkeypatch, capfd):
    """A long build (an hour for configs/v2.json on two cores) is a progress bar, not a silent log."""
    monkeypatch.setattr(train_module, "dataset_path", lambda data: tmp_path / "data.npz")
    config = tiny_config(steps=2)
    config["data"].update(heads=2, surface=256, near=256, free=128)
    config["train"].update(batch_heads=2)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    train_module.main(["--config", str(path), "--out", str(tmp_path / "model.npz")])
    captured = capfd.readouterr()
    assert "data set [" in captured.err and "2/2 heads 100.0%" in captured.err
    assert (tmp_path / "data.npz").exists() and "step 2/2" in captured.out


def test_a_config_names_a_warp_restart_it_knows(tmp_path):
    config = json.loads(Path(CONFIG).read_text())
    config["train"]["warp_restart"] = "bases"
    (tmp_path / "typo.json").write_text(json.dumps(config))
    with pytest.raises(ImHeadError, match='warp_restart is \'bases\'; one of false, "mlp", "basis"'):
        load_config(tmp_path / "typo.json")
