"""python -m model.evaluation.evaluate on a model of the all-ages data: rows per source and for children, beside each baseline.

A tiny model (configs/tiny.json, 20 steps) of a 2 ICT + 2 Anny data set; low resolution, few points, fast
fits. Its numbers are poor (it is barely trained); what is checked is what the report is made of.
"""
import json
import re
from dataclasses import asdict

import numpy as np
import pytest

from model import HeadModel
from model.data.anny_heads import AGE_BANDS_YEARS
from model.data.build_dataset import ANNY, ANNY_PHENOTYPES, ICT
from model.evaluation.evaluate import CHILD_AGE_YEARS, NOISE_MM, evaluate, evaluation_heads, main, markdown, mean_row
from model.evaluation.metrics import compare_surfaces
from model.training.train import dataset_path, load_config, train

METRIC_NAMES = ("chamfer_mm", "normal_consistency", "f_score_1mm", "f_score_5mm")
RESOLUTION, POINTS, ANNY_HELD_OUT = 32, 500, 3


@pytest.fixture(scope="module")
def all_ages_model(tmp_path_factory):
    config = load_config("configs/tiny.json")
    config["data"].update(heads=2, anny_heads=2, flat_neck_cut=True)
    config["train"].update(steps=20)
    path = tmp_path_factory.mktemp("model") / "v2-tiny.npz"
    train(config, path)
    return config, path


def table_rows(text):
    """{case: (Chamfer, normal consistency, F@1mm, F@5mm)} of a markdown() table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"-?\d+\.\d+", cells[1]):
            rows[cells[0]] = tuple(float(c) for c in cells[1:])
    return rows


def check_metrics(row):
    assert all(np.isfinite(row[k]) for k in METRIC_NAMES), row
    # Millimetres: a barely trained model is millimetres to centimetres off a head (in metres or in model
    # units, 0.2 m, the same distance would read 0.001-0.06 or 0.005-0.3).
    assert 0.5 < row["chamfer_mm"] < 60.0, row
    assert 0.0 <= row["normal_consistency"] <= 1.0 and 0.0 <= row["f_score_1mm"] <= row["f_score_5mm"] <= 1.0, row


def close_to(table_row, rows):
    """A table row (rounded as printed) is the mean of these report rows."""
    mean = mean_row(rows)
    return np.allclose(table_row, [mean[k] for k in METRIC_NAMES], rtol=0, atol=[6e-4, 6e-5, 6e-4, 6e-5])


def test_held_out_rows_per_source_and_for_children(all_ages_model, tmp_path):
    config, model_path = all_ages_model
    out = tmp_path / "evaluation"
    main(["--model", str(model_path), "--out", str(out), "--heads", "1", "--anny-heads", str(ANNY_HELD_OUT),
          "--robustness-heads", "0", "--resolution", str(RESOLUTION), "--points", str(POINTS),
          "--quality", "fast"])
    report = json.loads(out.with_suffix(".json").read_text())
    table = out.with_suffix(".md").read_text()
    assert not out.with_name(out.name + "-noise.png").exists()  # no robustness rows, no noise plot

    settings = report["settings"]
    assert settings["trained_on_flat_neck_cut"] and settings["trained_on_anny_heads"] == 2
    assert settings["held_out_heads"] == 1 and settings["anny_held_out_heads"] == ANNY_HELD_OUT
    assert settings["robustness_heads"] == 0 and settings["seconds"] > 0

    # Every row of every source, each beside its baseline on the same heads.
    assert len(report["held_out_fit"]) == len(report["mean_head"]) == 1
    assert len(report["anny_held_out_fit"]) == len(report["anny_mean_head"]) == len(report["anny_ages"]) == 3
    assert len(report["training_reconstruction"]) == 2  # 1 ICT and 1 Anny training head
    assert report["noise"] == {} and report["front_only"] == [] and report["millimetres_rotated_shifted"] == []
    for key in ("mean_head", "held_out_fit", "anny_mean_head", "anny_held_out_fit", "training_reconstruction"):
        for row in report[key]:
            check_metrics(row)
    for row in report["held_out_fit"] + report["anny_held_out_fit"]:
        assert 0 < row["fit_seconds"] < 120

    # The held-out heads are those of the held-out streams: Anny's take turns by age band.
    model = HeadModel.load(model_path)
    heads = evaluation_heads(model, 1, ANNY_HELD_OUT)
    ages = report["anny_ages"]
    assert ages == [identity.age_years for identity, _ in heads["anny"]]
    assert [row["age_years"] for row in report["anny_held_out_fit"]] == ages
    for age, (low, high, _) in zip(ages, AGE_BANDS_YEARS):
        assert low <= age < high
    assert ages[0] < CHILD_AGE_YEARS <= min(ages[1:])

    # The baselines are the model's mean head against those very heads (not, say, ICT's).
    mean_mesh = model.extract_mesh(model.mean_identity(), resolution=RESOLUTION)
    child = heads["anny"][0][1]
    assert compare_surfaces(mean_mesh.vertices, mean_mesh.faces, child.vertices, child.faces) == \
        pytest.approx(report["anny_mean_head"][0])
    ict_truth = heads["ict"][0][1]
    assert compare_surfaces(mean_mesh.vertices, mean_mesh.faces, ict_truth.vertices, ict_truth.faces) == \
        pytest.approx(report["mean_head"][0])

    # Held-out heads are not training heads; the training rows are the data set's rows, codes and all.
    data = np.load(dataset_path(config["data"]))
    assert list(data["source"]) == [ICT, ICT, ANNY, ANNY]
    trained_weights = data["identity_weights"]
    trained_people = np.column_stack([data["age_years"][data["source"] == ANNY], data["anny_phenotypes"]])
    for weights, _ in heads["ict"]:
        assert np.abs(trained_weights - weights).max(axis=1).min() > 0.1
    for identity, _ in heads["anny"]:
        person = asdict(identity)
        values = np.array([person["age_years"]] + [person[name] for name in ANNY_PHENOTYPES])
        assert np.abs(trained_people - values).max(axis=1).min() > 1e-3
    training = heads["training"]
    assert [row for row, _, _ in training] == [0, 2]  # the first of each source: ICT's row 0, Anny's row 2
    assert np.array_equal(training[0][1], trained_weights[0])
    assert training[1][1].age_years == pytest.approx(float(data["age_years"][2]))
    held_out_vertices = [head.vertices for _, head in heads["ict"] + heads["anny"]]
    for _, _, head in training:
        for vertices in held_out_vertices:
            assert vertices.shape != head.vertices.shape or np.abs(vertices - head.vertices).max() > 1e-3

    # The table: ICT, Anny (all ages) and Anny's children, each with its baseline; the children's rows
    # count only the heads under 12.
    rows = table_rows(table)
    children = [i for i, age in enumerate(ages) if age < CHILD_AGE_YEARS]
    assert children == [0]
    expected = {
        "ICT: mean head (baseline)": report["mean_head"],
        "ICT: held-out fit, clean": report["held_out_fit"],
        "Anny, all ages: mean head (baseline)": report["anny_mean_head"],
        "Anny, all ages: held-out fit, clean": report["anny_held_out_fit"],
        "Anny, children under 12 (1): mean head (baseline)": [report["anny_mean_head"][0]],
        "Anny, children under 12 (1): held-out fit, clean": [report["anny_held_out_fit"][0]],
        "training heads, learned codes": report["training_reconstruction"],
    }
    assert set(rows) == set(expected), table
    for name, report_rows in expected.items():
        assert close_to(rows[name], report_rows), (name, rows[name], mean_row(report_rows))
    assert rows["Anny, children under 12 (1): mean head (baseline)"] != rows["Anny, all ages: mean head (baseline)"]
    assert "held-out Anny people: 3" in table and "fast quality" in table and "32^3" in table


def test_robustness_rows(all_ages_model):
    """The robustness rows (the command's default) with one head: every noise level, front-only, mm rotated."""
    _, model_path = all_ages_model
    report = evaluate(HeadModel.load(model_path), n_heads=1, resolution=RESOLUTION, n_points=POINTS,
                      quality="fast", robustness_heads=1, progress=lambda message: None, anny_heads=0)
    assert "anny_held_out_fit" not in report
    assert list(report["noise"]) == [f"{sigma:g}" for sigma in NOISE_MM]
    rows = [r for noise_rows in report["noise"].values() for r in noise_rows]
    rows += report["front_only"] + report["millimetres_rotated_shifted"]
    assert len(rows) == len(NOISE_MM) + 2
    for row in rows:
        check_metrics(row)
    check_metrics({k[len("face_"):]: v for k, v in report["front_only"][0].items() if k.startswith("face_")})
    table = table_rows(markdown(report))
    assert "held-out fit, noise σ = 4 mm" in table and "held-out fit, millimetres, rotated ≤ 30°, shifted" in table
    assert "Anny, all ages: held-out fit, clean" not in table
