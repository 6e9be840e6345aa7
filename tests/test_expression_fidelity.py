"""The expression-fidelity evaluation: ICT's own expressed skin against the model's inverse warp of it."""
import numpy as np

from model import HeadModel
from model.data.heads import HeadData
from model.evaluation.evaluate import evaluation_heads
from model.evaluation.expression_fidelity import main, measure


def test_a_warp_that_has_barely_learned_reaches_little_of_icts_jaw_and_folds_nothing(tiny_model):
    model = HeadModel.load(tiny_model)  # 60 steps: its warp is still close to the identity map
    [(row, identity, _)] = evaluation_heads(model, 1, n_train=1)["training"]
    rows = measure(model, model.codes[row], identity, HeadData())
    assert set(rows) == set(model.expression_names)
    jaw = rows["jawOpen"]
    assert jaw["truth_max_mm"] > 15 and jaw["reach"] < 0.5 and jaw["error_mm"] > 2, jaw
    assert all(row["folded"] == 0 for row in rows.values())


def test_the_command_writes_a_row_per_expression(tiny_model, tmp_path):
    main(["--model", str(tiny_model), "--heads", "1", "--out", str(tmp_path / "fidelity")])
    table = (tmp_path / "fidelity.md").read_text()
    assert table.count("\n| ") == 1 + 53 and "median reach" in table
