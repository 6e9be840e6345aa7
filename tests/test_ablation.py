"""The ablation command end to end, as a two-variant, few-step smoke run."""
import json

from model.training.ablation import main

CONFIG = "configs/tiny.json"


def smoke_run(tmp_path, *extra):
    return main(["--config", CONFIG, "--out", str(tmp_path / "ablation"), "--runs", str(tmp_path / "runs"),
                 "--variants", "full", "no_fusion", "--steps", "5", "--heads", "1", "--resolution", "32", *extra])


def test_two_variant_smoke_run_writes_the_table(tmp_path):
    rows = smoke_run(tmp_path)
    assert [r["variant"] for r in rows] == ["full", "no_fusion"]
    for row in rows:
        assert row["chamfer_mm"] > 0 and 0 <= row["f_score_5mm"] <= 1
    # Without FusionNet the parts regress distances directly: fewer parameters, same latent size.
    assert rows[1]["parameters"] < rows[0]["parameters"] and rows[1]["latent_size"] == rows[0]["latent_size"]
    out = tmp_path / "ablation"
    table = out.with_suffix(".md").read_text()
    assert "imHead (full)" in table and "w/o FusionNet" in table and "python -m model.training.ablation" in table
    assert len(json.loads(out.with_suffix(".json").read_text())["rows"]) == 2


def test_a_stopped_run_keeps_its_scored_variants_and_jobs_train_side_by_side(tmp_path):
    first = smoke_run(tmp_path, "--jobs", "2")
    assert [r["variant"] for r in first] == ["full", "no_fusion"]
    for variant in ("full", "no_fusion"):  # scored rows stay; the model files are not needed again
        (tmp_path / "runs" / f"{variant}.npz").unlink()
    assert smoke_run(tmp_path) == first
    assert not (tmp_path / "runs" / "full.npz").exists()
    # Another budget is another run: trained and scored again.
    main(["--config", CONFIG, "--out", str(tmp_path / "ablation"), "--runs", str(tmp_path / "runs"),
                  "--variants", "full", "--steps", "6", "--heads", "1", "--resolution", "32"])
    assert (tmp_path / "runs" / "full.npz").exists()
    assert json.loads((tmp_path / "runs" / "full.json").read_text())["config"]["train"]["steps"] == 6
