"""The ablation command end to end, as a two-variant, few-step smoke run."""
import json

from model.training.ablation import main

CONFIG = "configs/tiny.json"


def test_two_variant_smoke_run_writes_the_table(tmp_path):
    out = tmp_path / "ablation"
    rows = main(["--config", CONFIG, "--out", str(out), "--runs", str(tmp_path / "runs"),
                 "--variants", "full", "no_fusion", "--steps", "5", "--heads", "1", "--resolution", "32"])
    assert [r["variant"] for r in rows] == ["full", "no_fusion"]
    for row in rows:
        assert row["chamfer_mm"] > 0 and 0 <= row["f_score_5mm"] <= 1
    # Without FusionNet the parts regress distances directly: fewer parameters, same latent size.
    assert rows[1]["parameters"] < rows[0]["parameters"] and rows[1]["latent_size"] == rows[0]["latent_size"]
    table = out.with_suffix(".md").read_text()
    assert "imHead (full)" in table and "w/o FusionNet" in table and "python -m model.training.ablation" in table
    assert len(json.loads(out.with_suffix(".json").read_text())["rows"]) == 2
