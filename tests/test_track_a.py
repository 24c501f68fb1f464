"""The car/truck/cat studies end to end on the synthetic tree: baseline, imbalance, label_noise, hyperparams."""

import json

import keras
import numpy as np
import pytest
from conftest import run_command

from experiments import _data
from keras_apml import benchmark, label_files, npz, trainer


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.xdist_group("baseline")  # shares the quick run with test_experiments on one worker
def test_baseline_reports_the_always_car_rule_beside_the_network(quick_run):
    status, out = quick_run("baseline")
    assert status == 0
    metrics = _metrics(out)
    always = metrics["runs"]["always_majority"]
    assert always["class"] == "car"
    assert always["dev"]["accuracy"] == pytest.approx(28 / 32) and always["dev"]["balanced_accuracy"] == 1 / 3
    assert always["dev"]["true_labels"]["accuracy"] == pytest.approx(25 / 32)
    assert metrics["data"]["wrong labels"] == {"train": 24, "dev": 3}
    assert metrics["data"]["train observed"] == {"n": 281, "car": 248, "truck": 22, "cat": 11}
    share = metrics["runs"]["small_cnn"]["dev_predicted_share"]
    assert sum(share.values()) == pytest.approx(1.0)
    report = (out / "report.md").read_text()
    assert "| always car | true |" in report and "24 of 281 training labels" in report
    assert (out / "mislabelled.png").is_file() and (out / "baseline.keras").is_file()


@pytest.mark.slow
def test_imbalance_table_has_every_strategy_and_seed_and_saves_the_best(image_tree, tmp_path):
    root, _ = image_tree
    out = tmp_path / "run"
    argv = ["--data", "benchmark", "--data-dir", str(root), "--out", str(out), "--quick", "--quiet",
            "--strategies", "none,random_over", "--seeds", "0,1", "--model", "small_cnn"]
    assert run_command("imbalance", argv) == 0
    metrics = _metrics(out)
    assert set(metrics["runs"]) == {"none", "random_over"}
    over = metrics["runs"]["random_over"]
    assert set(over["seeds"]) == {"0", "1"} and over["seeds"]["0"]["fitted_class_counts"] == [248, 248, 248]
    mean, std = over["summary"]["true"]["balanced_accuracy"]
    per_seed = [over["seeds"][s]["dev"]["true_labels"]["balanced_accuracy"] for s in ("0", "1")]
    assert mean == pytest.approx(np.mean(per_seed)) and std == pytest.approx(np.std(per_seed))
    best = metrics["best"]["strategy"]
    best_mean = metrics["runs"][best]["summary"]["true"]["balanced_accuracy"][0]
    assert best_mean == max(r["summary"]["true"]["balanced_accuracy"][0] for r in metrics["runs"].values())
    assert keras.models.load_model(out / "best.keras").output_shape == (None, 3)
    report = (out / "report.md").read_text()
    assert report.count("| true |") == 2 + 1 and "balanced_accuracy.png" in report  # + the best model's table


@pytest.mark.slow
@pytest.mark.xdist_group("label_noise")
def test_label_noise_writes_a_relabel_file_that_train_can_apply(quick_run, image_tree, tmp_path):
    root, _ = image_tree
    status, out = quick_run("label_noise")
    assert status == 0
    metrics = _metrics(out)
    detection = metrics["runs"]["detection"]
    assert detection["train"]["wrong"] == 24 and detection["dev"]["wrong"] == 3
    assert set(metrics["runs"]) == {"detection", "noisy", "removed", "relabelled", "true"}
    assert metrics["runs"]["noisy"]["training_images"] == metrics["runs"]["true"]["training_images"] == 281
    assert metrics["runs"]["removed"]["training_images"] == 281 - detection["train"]["flagged"]
    assert detection["rounds"] == [detection["train"]]  # one round by default
    report = (out / "report.md").read_text()
    assert "5-fold out-of-fold probabilities from `flip+class_weight` models (1 epoch), each image's averaged with " \
           f"its mirror image's; cleanlab flagged {detection['train']['flagged']} of 281 training labels" in report
    assert "| train | 24 |" in report and "| train, round" not in report and "rounds, each after" not in report
    assert ("## Data\n\ncar/truck/cat from CIFAR-10: 3 classes (car, truck, cat); the observed labels as the data "
            "gives them, the true labels the data knows; train 281, dev 32 images (--quick).") in report
    saved = npz.load_arrays(out / "out_of_fold_probabilities.npz")
    assert saved["probabilities"].shape == (281, 3) and len(saved["flagged"]) == detection["train"]["flagged"]
    bench = benchmark.load_benchmark(root, 0, quick=True)
    relabelled, record = label_files.apply_relabel_file(bench["train"].y, out / "flagged_relabel.csv",
                                                        bench.class_names,
                                                        made_from=_data.positions_made_from(bench, ["train"]))
    assert record["rows"] == detection["train"]["flagged"]
    assert run_command("train", ["--data", "benchmark", "--data-dir", str(root), "--out", str(tmp_path / "t"),
                                 "--quick", "--quiet",
                                 "--relabel", str(out / "flagged_relabel.csv")]) == 0


@pytest.mark.parametrize("argv, epochs", [([], 20), (["--init", "start.keras"], 10),
                                          (["--quick", "--init", "start.keras"], 1),
                                          (["--init", "start.keras", "--detect-epochs", "15"], 15)])
def test_detection_trains_fewer_epochs_from_a_trained_start(argv, epochs):
    from experiments import label_noise

    assert label_noise.parse_args(argv).detect_epochs == epochs


@pytest.mark.parametrize("argv, detector, repeats", [([], "head", 3), (["--features", "m.keras"], "both", 1),
                                                     (["--features", "m.keras", "--detector", "head"], "head", 3),
                                                     (["--features", "m.keras", "--detector", "fine-tune"],
                                                      "fine-tune", 1),
                                                     (["--features", "m.keras", "--repeats", "2"], "both", 2),
                                                     (["--backbone", "VGG19"], "head", 3)])
def test_a_source_detects_with_the_head_and_the_fine_tuned_source_by_default(argv, detector, repeats):
    from experiments import label_noise

    args = label_noise.parse_args(argv)
    assert (args.detector, args.repeats) == (detector, repeats)


@pytest.mark.slow
def test_label_noise_on_course_pickles_has_no_truth_to_score_or_retrain_on(image_tree, tmp_path, monkeypatch):
    from test_data import write_course_pickle

    trained, train = [], trainer.train  # (strategy, epochs, images) of every model the study trains

    def recorded_train(name, x, y, recipe, **kwargs):
        trained.append((name, recipe.epochs, len(y)))
        return train(name, x, y, recipe, **kwargs)

    monkeypatch.setattr(trainer, "train", recorded_train)

    bench = benchmark.load_benchmark(image_tree[0], 0, quick=True)
    write_course_pickle(tmp_path / "train.pickle", bench["train"].x, bench["train"].y)
    write_course_pickle(tmp_path / "dev.pickle", bench["dev"].x, bench["dev"].y)
    out = tmp_path / "run"
    argv = ["--train-pickle", str(tmp_path / "train.pickle"), "--dev-pickle", str(tmp_path / "dev.pickle"),
            "--out", str(out), "--quick", "--quiet", "--folds", "2", "--repeats", "2", "--model", "small_cnn",
            "--no-mirror", "--detect-epochs", "2", "--epochs", "1", "--rounds", "2"]
    assert run_command("label_noise", argv) == 0
    metrics = _metrics(out)
    assert set(metrics["runs"]) == {"detection", "noisy", "removed", "relabelled"}  # no true labels to train on
    detection = metrics["runs"]["detection"]
    assert set(detection["train"]) == {"flagged"} and len(detection["rounds"]) == 2
    # 2 rounds of 2 x 2 fold models and the dev-flagging one at --detect-epochs; noisy, removed, relabelled at --epochs
    assert [t[:2] for t in trained] == [("flip+class_weight", 2)] * 9 + [("augment+oversample", 1)] * 3
    first_round = detection["rounds"][0]["flagged"]
    sizes = [t[2] for t in trained]
    assert first_round > 0 and sum(sizes[4:8]) == sum(sizes[:4]) - 2 * first_round  # each image in 1 fit a repeat
    assert sizes[8] == len(bench["train"].y) - first_round  # the dev-flagging model, trained as round 2's were
    report = (out / "report.md").read_text()
    assert "2-fold out-of-fold probabilities from `flip+class_weight` models (2 epochs), averaged over 2 repeats; " \
           in report
    assert f"In 2 rounds, each after the first with fold models trained without the images the round before " \
           f"flagged (they flagged {first_round}, {detection['rounds'][1]['flagged']})" in report


@pytest.mark.slow
def test_hyperparams_marks_a_diverged_learning_rate_and_never_scores_it(image_tree, tmp_path, monkeypatch):
    from experiments import hyperparams

    monkeypatch.setitem(hyperparams.SWEEPS, "lr", ("lr", (1e-3, 1e9)))
    root, _ = image_tree
    out = tmp_path / "run"
    argv = ["--data", "benchmark", "--data-dir", str(root), "--out", str(out), "--quick", "--quiet", "--sweep",
            "lr,epochs",
            "--strategy", "class_weight", "--epochs", "2", "--model", "small_cnn"]
    assert run_command("hyperparams", argv) == 0
    sweep = _metrics(out)["runs"]["lr"]
    huge = sweep["configurations"]["lr=1e+09"]
    assert huge["training"]["status"].startswith("diverged at epoch") and "dev" not in huge
    assert None in huge["training"]["history"]["loss"]
    assert sweep["best"] == "lr=0.001"
    epochs = _metrics(out)["runs"]["epochs"]
    assert len(epochs["balanced_accuracy_per_epoch"]["dev (true)"]) == 6  # 3x the recipe's 2 epochs
    report = (out / "report.md").read_text()
    assert "| lr=1e+09 | diverged at epoch" in report and "Best lr: `lr=0.001`" in report


@pytest.mark.slow
@pytest.mark.parametrize("name, argv, message", [
    ("imbalance", ["--seeds", "0,x"], "--seeds: expected an integer seed, got 'x'"),
    ("imbalance", ["--strategies", "none,smote2"], "unknown 'smote2'; --strategies takes comma-separated names"),
    ("baseline", ["--train-pickle", "a.pkl"], "--train-pickle and --dev-pickle go together"),
    ("hyperparams", ["--sweep", "lr,colour"], "unknown 'colour'; --sweep takes comma-separated names"),
    ("label_noise", ["--folds", "1"], "--folds must be at least 2"),
    ("label_noise", ["--repeats", "0"], "argument --repeats: expected a positive integer, got 0"),
    ("label_noise", ["--rounds", "0"], "argument --rounds: expected a positive integer, got 0"),
])
def test_bad_input_is_one_error_line(image_tree, tmp_path, capsys, name, argv, message):
    root, _ = image_tree
    status = run_command(name, ["--data", "benchmark", "--data-dir", str(root), "--out", str(tmp_path / "run"),
                                "--quick", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error:") and message in err[0]


@pytest.mark.slow
def test_a_resumed_study_trains_only_what_an_earlier_call_did_not_record(image_tree, tmp_path, monkeypatch):
    root, _ = image_tree
    out = tmp_path / "run"
    argv = ["--data", "benchmark", "--data-dir", str(root), "--out", str(out), "--quick", "--quiet", "--model",
            "small_cnn",
            "--strategies", "none,class_weight"]
    assert run_command("imbalance", argv) == 0
    metrics = _metrics(out)
    kept = metrics["runs"]["none"]
    del metrics["finished"], metrics["runs"]["class_weight"]  # as if killed before class_weight was recorded
    (out / "metrics.json").write_text(json.dumps(metrics))
    trained, train = [], trainer.train

    def recorded_train(name, *args, **kwargs):
        trained.append(name)
        return train(name, *args, **kwargs)

    monkeypatch.setattr(trainer, "train", recorded_train)
    assert run_command("imbalance", argv) == 0
    after = _metrics(out)
    best = after["best"]["strategy"]
    # class_weight trained; none kept (trained again only if it is the best, for best.keras)
    assert trained == ["class_weight"] + (["none"] if best == "none" else [])
    assert after["runs"]["none"]["seeds"] == kept["seeds"] and set(after["runs"]["class_weight"]["seeds"]) == {"0"}
    assert after["finished"] and (out / "best.keras").is_file()


@pytest.mark.slow
@pytest.mark.xdist_group("label_noise")
def test_a_resumed_label_noise_run_keeps_its_detection(quick_run, image_tree, tmp_path, monkeypatch):
    import shutil

    from keras_apml import label_noise

    status, finished = quick_run("label_noise")
    assert status == 0
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    metrics = _metrics(out)
    del metrics["finished"], metrics["runs"]["true"]  # as if killed before the last retraining was recorded
    (out / "metrics.json").write_text(json.dumps(metrics))

    def no_detection(*args, **kwargs):
        raise AssertionError("detection ran again")

    monkeypatch.setattr(label_noise, "flag_in_rounds", no_detection)
    retrained, train = [], trainer.train
    monkeypatch.setattr(trainer, "train", lambda name, x, y, *a, **k: retrained.append(len(y)) or train(name, x, y,
                                                                                                        *a, **k))
    assert run_command("label_noise", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(out),
                                       "--quick",
                                       "--quiet"]) == 0
    after = _metrics(out)
    assert retrained == [after["runs"]["true"]["training_images"]]  # only the missing retraining
    assert after["runs"]["detection"] == metrics["runs"]["detection"] and after["finished"]


@pytest.mark.slow
@pytest.mark.xdist_group("label_noise")
def test_a_resumed_label_noise_run_detects_again_when_its_saved_probabilities_are_damaged(quick_run, image_tree,
                                                                                          tmp_path, monkeypatch):
    import shutil

    from keras_apml import label_noise

    status, finished = quick_run("label_noise")
    assert status == 0
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    metrics = _metrics(out)
    del metrics["finished"], metrics["runs"]["true"]
    (out / "metrics.json").write_text(json.dumps(metrics))
    saved = out / "out_of_fold_probabilities.npz"
    saved.write_bytes(saved.read_bytes()[:100])  # truncated by a kill or a full disk
    detections, flag = [], label_noise.flag_in_rounds
    monkeypatch.setattr(label_noise, "flag_in_rounds", lambda *a, **k: detections.append(1) or flag(*a, **k))
    assert run_command("label_noise", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(out),
                                       "--quick",
                                       "--quiet"]) == 0
    assert detections == [1] and _metrics(out)["finished"]
    train = benchmark.load_benchmark(image_tree[0], quick=True)["train"]
    assert npz.load_arrays(saved)["probabilities"].shape == (len(train), 3)
