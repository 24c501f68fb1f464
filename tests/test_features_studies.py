"""Studies on a trained model's cached features (``--features``): a softmax head instead of a conv net, the
offline source it comes from, and label errors found from its out-of-fold probabilities."""

import json

import numpy as np
import pytest
from conftest import run_command

from keras_apml import label_noise, models
from keras_apml.cifar10 import CIFAR10_CLASSES
from keras_apml.recipe import FEATURE_HEAD

SEVEN = "airplane,bird,deer,dog,frog,horse,ship"


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """An untrained cifar_convnet saved as .keras: 64 penultimate features (its flatten layer) of 32x32 images."""
    path = tmp_path_factory.mktemp("backbone") / "convnet.keras"
    models.cifar_convnet().save(path)
    return path


@pytest.mark.slow
def test_the_feature_head_finds_planted_label_errors_on_separable_features():
    rng = np.random.default_rng(0)
    y_true = np.repeat([0, 1, 2], [240, 40, 40])  # imbalanced, as the benchmark
    x = (rng.normal(0, 4, (3, 16))[y_true] + rng.normal(0, 1, (len(y_true), 16))).astype(np.float32)
    y = y_true.copy()
    wrong = np.concatenate([np.flatnonzero(y_true == 2)[:12], np.flatnonzero(y_true == 1)[:6]])
    y[wrong] = 0  # 12 of the 40 cats and 6 of the 40 trucks called car
    head = FEATURE_HEAD.replace(batch_size=16, lr=1e-2)  # 320 points: smaller batches, a larger step
    probabilities = label_noise.out_of_fold_probabilities(
        x, y, label_noise.strategy_fit_predict("class_weight", head), folds=5, seed=0)
    assert np.array_equal(probabilities.argmax(axis=1), y_true)  # no fold model learnt a planted error
    flagged = label_noise.find_issues(y, probabilities)
    quality = label_noise.detection_quality(flagged, y, y_true)
    assert (quality["flagged"], quality["correctly_flagged"], quality["wrong"]) == (16, 16, 18)


@pytest.mark.slow
def test_imbalance_on_features_trains_every_strategy_that_applies_on_cached_features(image_tree, backbone, tmp_path):
    root, _ = image_tree
    argv = ["--data", "benchmark", "--data-dir", str(root), "--quick", "--quiet", "--features", str(backbone)]
    assert run_command("imbalance", [*argv, "--out", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert list(metrics["runs"]) == ["none", "class_weight", "oversample", "under", "over+under", "smote",
                                     "random_over", "two_stage"]
    counts = {name: m["seeds"]["0"]["fitted_class_counts"] for name, m in metrics["runs"].items()}
    assert len(set(counts["under"])) == 1 and counts["smote"] == [max(counts["none"])] * 3  # features resampled
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["features"]["size"] == 64 and config["features"]["cache"] == "miss"
    assert config["recipe"]["model"] == "linear" and config["recipe"]["epochs"] == 1  # --quick
    assert not (tmp_path / "a" / "best.keras").exists()  # not an image model for adversarial's default
    best = models.load_model(tmp_path / "a" / "best_head.keras")
    assert best.input_shape == (None, 64)
    assert run_command("imbalance", [*argv, "--out", str(tmp_path / "b"), "--strategies", "none"]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["features"]["cache"] == "hit"


@pytest.mark.slow
def test_label_noise_on_features_flags_from_a_heads_out_of_fold_probabilities(image_tree, backbone, tmp_path):
    root, _ = image_tree
    out = tmp_path / "run"
    assert run_command("label_noise", ["--data", "benchmark", "--data-dir", str(root), "--quick", "--quiet", "--out",
                                       str(out),
                                       "--features", str(backbone), "--detector", "head"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["arguments"]["detect_strategy"] == config["arguments"]["strategy"] == "class_weight"
    assert config["features"]["mirror_averaged"] is True
    detection = json.loads((out / "metrics.json").read_text())["runs"]["detection"]
    saved = np.load(out / "out_of_fold_probabilities.npz")
    assert saved["probabilities"].shape == (len(saved["labels"]), 3) and "f1" in detection["train"]
    lines = (out / "flagged_relabel.csv").read_text().splitlines()
    assert lines[0].startswith("# made from: ") and lines[1] == "index,label"
    assert len(lines) == 2 + detection["train"]["flagged"]
    report = (out / "report.md").read_text()
    assert f"a softmax head on the penultimate features of `{backbone}`" in report and "flagged.png" in report
    assert f"## Features\n\nEvery model here is a softmax head on the penultimate features of `{backbone}` (64 per " \
           "image, each image's averaged with its mirror image's; computed in" in report


@pytest.mark.slow
def test_label_noise_detector_both_averages_the_head_with_the_source_fine_tuned_on_each_fold(
        image_tree, backbone, tmp_path):
    root, _ = image_tree
    out = tmp_path / "run"
    assert run_command("label_noise", ["--data", "benchmark", "--data-dir", str(root), "--quick", "--quiet", "--out",
                                       str(out),
                                       "--features", str(backbone)]) == 0  # --detector both: the default
    config = json.loads((out / "config.json").read_text())
    assert config["arguments"]["detector"] == "both" and config["arguments"]["repeats"] == 1
    detection = json.loads((out / "metrics.json").read_text())["runs"]["detection"]
    assert detection["detector"] == "both" and "f1" in detection["train"]
    assert detection["fine_tune"] == {"model": str(backbone), "epochs": 1, "strategy": "flip+class_weight"}
    report = (out / "report.md").read_text()
    assert f"averaged, fold by fold, with `flip+class_weight` models of `{backbone}` fine-tuned on each fold's " \
           "images from its weights (1 epoch), each image's features, and the fine-tuned models' probabilities for " \
           "it, averaged with its mirror image's; cleanlab flagged" in report
    assert f"## Features\n\nThe heads here are softmax heads on the penultimate features of `{backbone}` (64 per " \
           "image" in report
    assert f"Detection also fine-tunes `{backbone}` itself on each fold's images (`--detector both`; the Detection " \
           "section)." in report


@pytest.mark.slow
def test_label_noise_on_a_keras_applications_backbone_reports_ranking_and_pairs(image_tree, tmp_path):
    root, _ = image_tree
    out = tmp_path / "run"
    assert run_command("label_noise", ["--data", "benchmark", "--data-dir", str(root), "--quick", "--quiet", "--out",
                                       str(out),
                                       "--backbone", "MobileNetV3Small", "--weights", "none", "--backbone-size",
                                       "32"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert {k: config["features"][k] for k in ("backbone", "weights", "input_size", "size")} == \
        {"backbone": "MobileNetV3Small", "weights": None, "input_size": 32, "size": 576}
    assert config["recipe"]["model"] == "linear"
    metrics = json.loads((out / "metrics.json").read_text())["runs"]
    detection = metrics["detection"]
    assert detection["train"]["wrong"] > 0 and 0 <= detection["train"]["roc_auc"] <= 1
    assert 0 < detection["train"]["average_precision"] <= 1
    assert sum(p["wrong"] for p in detection["train_by_pair"]["wrong"]) == detection["train"]["wrong"]
    assert sum(p["flagged"] for p in detection["train_by_pair"]["wrong"]) == detection["train"]["correctly_flagged"]
    report = (out / "report.md").read_text()
    assert "the pooled features of MobileNetV3Small from keras.applications (random weights; the images resized " \
           "inside it to 32x32)" in report
    assert "these figures test the path and mean nothing about the data" in report
    assert "| split | wrong labels | flagged | flagged and wrong | precision | recall | F1 | ROC AUC | average " \
           "precision |" in report and "| labelled | really | wrong | flagged |" in report


@pytest.mark.slow
def test_the_seven_class_source_never_sees_a_car_truck_or_cat(image_tree, tmp_path, monkeypatch):
    from keras_apml import trainer

    seen, fit = [], trainer.fit

    def spy(model, x, y, r, **kwargs):
        seen.append((np.asarray(x), np.asarray(y), *kwargs["validation"]))
        return fit(model, x, y, r, **kwargs)

    monkeypatch.setattr(trainer, "fit", spy)
    root, arrays = image_tree
    out = tmp_path / "source"
    assert run_command("train", ["--data", "cifar10", "--classes", SEVEN, "--model", "airbench", "--data-dir",
                                 str(root), "--out", str(out), "--quick", "--quiet"]) == 0
    x_tree, labels = arrays["train"]
    kept = [CIFAR10_CLASSES.index(c) for c in SEVEN.split(",")]
    allowed = {image.tobytes() for image, label in zip(x_tree, labels) if label in kept}
    excluded = {image.tobytes() for image, label in zip(x_tree, labels) if label not in kept}
    (x, y, x_val, y_val), = seen
    assert len(x) + len(x_val) == 500 and set(y) == set(y_val) == set(range(7))
    assert all(image.tobytes() in allowed for image in np.concatenate([x, x_val]))
    assert not any(image.tobytes() in excluded for image in np.concatenate([x, x_val]))
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["optimizer"] == "nesterov" and config["recipe"]["label_smoothing"] == 0.2
    assert config["recipe"]["drop_remainder"] is True and config["recipe"]["schedule"] == "triangle"
    assert config["data"]["classes"] == SEVEN.split(",")


def test_a_study_given_model_airbench_trains_with_the_whole_of_airbenchs_recipe():
    from experiments import _flags
    from experiments import label_noise as study
    from keras_apml.recipe import AIRBENCH

    # the fields without a flag (full batches only, the augmentation) are airbench's too, not Recipe()'s defaults
    assert _flags.resolve_recipe(study.parse_args(["--model", "airbench"])) == AIRBENCH
    given = study.parse_args(["--model", "airbench", "--lr", "0.5", "--batch-size", "256"])
    assert _flags.resolve_recipe(given) == AIRBENCH.replace(lr=0.5, batch_size=256)
