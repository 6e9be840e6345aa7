"""Training: the loss falls, runs resume from checkpoints exactly, the result is a closed head."""
import numpy as np
import pytest

from model import HeadModel, ImHeadError
from model.runtime.meshing import connected_components, is_closed
from model.training import train as train_module
from model.training.train import load_config, train

CONFIG = "configs/tiny.json"


class Interrupted(Exception):
    pass


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

    def stop_at_15(step, steps, terms):
        if step == 15:
            raise Interrupted
    with pytest.raises(Interrupted):
        train(tiny_config(20, checkpoint_every=10), tmp_path / "resumed.npz", progress=stop_at_15)
    assert (tmp_path / "resumed.checkpoint.pt").exists()
    train(tiny_config(20, checkpoint_every=10), tmp_path / "resumed.npz")
    assert not (tmp_path / "resumed.checkpoint.pt").exists()

    straight, resumed = np.load(tmp_path / "straight.npz"), np.load(tmp_path / "resumed.npz")
    for name in straight.files:
        if name.startswith("param/") or name == "codes":
            assert np.allclose(straight[name], resumed[name], atol=1e-6), name


def test_the_warp_stage_alone_reproduces_the_full_run(tmp_path):
    """The bundled model's second stage was run with --warp-only on the first stage's file."""
    from model.training.train import warp_only
    both = tiny_config(10)
    both["train"]["warp_steps"] = 30
    warp_losses = []
    train(both, tmp_path / "both.npz")
    train(tiny_config(10), tmp_path / "staged.npz")
    warp_only(both, tmp_path / "staged.npz", progress=lambda s, n, t: warp_losses.append(t["weighted_warp"]))
    assert np.mean(warp_losses[-5:]) < np.mean(warp_losses[:5])
    a, b = np.load(tmp_path / "both.npz"), np.load(tmp_path / "staged.npz")
    for name in a.files:
        if name.startswith("param/") or name == "codes":
            assert np.allclose(a[name], b[name], atol=1e-6), name


def test_a_checkpoint_resumes_only_its_own_config_and_data(tmp_path, monkeypatch):
    def stop_at_10(step, steps, losses):
        if step == 10:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(tiny_config(20, checkpoint_every=5), tmp_path / "m.npz", progress=stop_at_10)
    other = tiny_config(20, checkpoint_every=5)
    other["train"]["lr_network"] *= 2
    with pytest.raises(ImHeadError, match=r"another config \(differs in train.lr_network\)"):
        train(other, tmp_path / "m.npz")
    monkeypatch.setattr(train_module, "data_version", lambda: "another")  # what a changed data file makes
    with pytest.raises(ImHeadError, match="trained on data version .* now make version another"):
        train(tiny_config(20, checkpoint_every=5), tmp_path / "m.npz")
    monkeypatch.undo()
    faster = tiny_config(20, checkpoint_every=7)  # how often to checkpoint does not change the run
    faster["train"]["threads"] = 1
    train(faster, tmp_path / "m.npz")
    assert not (tmp_path / "m.checkpoint.pt").exists()
