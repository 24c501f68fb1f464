"""Every experiment end to end on a synthetic image-folder tree, and the error contract of the commands."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import run_command

TOOLS = {"cache", "make_dataset", "review"}  # commands beside the studies: they train nothing, open no run directory
EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "experiments").glob("*.py")
                     if not p.stem.startswith("_") and p.stem not in TOOLS)


# The splits each study scores under --quick on the image_tree fixture, and their sizes: the benchmark's dev
# set of 32 (25 cars, 3 trucks, 4 cats), its training set of 281 (baseline) or the 224 + 57 train splits into.
QUICK_SPLITS = {
    "adversarial": set(),  # attacks: accuracies per eps, checked below
    "baseline": {("dev", 32), ("dev/true", 32), ("train", 281), ("train/true", 281)},
    "cifar_transfer": {("test", 200), ("train", 400), ("validation", 100)},
    "feature_extraction": {("test", 200), ("train", 500)},
    "hyperparams": {("dev", 32), ("dev/true", 32), ("validation", 57)},
    "imbalance": {("dev", 32), ("dev/true", 32)},
    "label_noise": {("dev", 32), ("dev/true", 32)},
    "train": {("dev", 32), ("dev/true", 32), ("train", 224), ("train/true", 224), ("validation", 57),
              ("validation/true", 57)},
}


def scored_splits(metrics, path=()):
    """``(split name, metrics)`` of every split scored anywhere in metrics.json (``dev/true``: on true labels)."""
    if isinstance(metrics, dict):
        if "confusion_matrix" in metrics:
            yield "/".join(path[-2:]) if path[-1] == "true" else path[-1], metrics
        for key, value in metrics.items():
            yield from scored_splits(value, (*path, "true" if key == "true_labels" else key))


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in EXPERIMENTS])
def test_every_experiment_runs_quick_end_to_end(name, quick_run):
    status, out = quick_run(name)
    assert status == 0
    for artifact in ("config.json", "metrics.json", "report.md"):
        assert (out / artifact).is_file(), artifact
    assert list(out.glob("*.png"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["experiment"] == name and metrics["runs"]
    scored = list(scored_splits(metrics["runs"]))
    assert {(split, m["n"]) for split, m in scored} == QUICK_SPLITS[name]
    for split, m in scored:  # every image of a split counted once, every rate a count over it
        assert np.sum(m["confusion_matrix"]) == m["n"] and round(m["accuracy"] * m["n"], 6) % 1 == 0, split
        if split == "dev/true":
            assert np.sum(m["confusion_matrix"], axis=1).tolist() == [25, 3, 4]
    if name == "adversarial":  # the 32 dev images attacked at every eps, by both attacks
        for attack in ("fgsm", "pgd"):
            by_eps = metrics["runs"]["sweep"][attack]
            assert "0" in by_eps and all(round(r["accuracy"] * 32, 6) % 1 == 0 for r in by_eps.values())
    config = json.loads((out / "config.json").read_text())
    assert config["arguments"].get("seed", 0) == 0 and config["arguments"].get("seeds", [0]) == [0]
    assert "tensorflow" in config["versions"] and config["device"]["device"]
    assert metrics["finished"]


@pytest.mark.slow
def test_train_on_the_benchmark_reports_observed_and_true_labels(image_tree, tmp_path):
    root, _ = image_tree
    out = tmp_path / "run"
    assert run_command("train", ["--data", "benchmark", "--data-dir", str(root), "--out", str(out), "--quick",
                                 "--quiet",
                                 "--balance", "class_weight"]) == 0
    run = json.loads((out / "metrics.json").read_text())["runs"]["small_cnn"]
    assert set(run) >= {"train", "validation", "dev", "timing", "training"}
    dev = run["dev"]
    assert dev["n"] == 32 and np.sum(dev["confusion_matrix"]) == 32
    assert np.sum(dev["true_labels"]["confusion_matrix"], axis=1).tolist() == [25, 3, 4]
    assert np.sum(dev["confusion_matrix"], axis=1).tolist() == [28, 3, 1]  # 3 of 4 cats labelled car
    assert run["class_weight"] is not None and run["timing"]["fit_seconds"] > 0
    report = (out / "report.md").read_text()
    assert "| dev | true |" in report and "confusion_small_cnn_dev_true.png" in report and "Total params" in report
    model = keras.models.load_model(out / "model.keras")
    assert model.count_params() == 61411 + 7  # and the standardisation's mean, variance (3 channels each), count


@pytest.mark.slow
def test_train_on_cifar10_standardises_on_the_training_split_only(image_tree, tmp_path, monkeypatch):
    from experiments import train
    from keras_apml import models

    fitted_on = []
    real_fit = models.fit_standardizer
    monkeypatch.setattr(models, "fit_standardizer", lambda x: fitted_on.append(x) or real_fit(x))
    root, _ = image_tree
    argv = ["--data", "cifar10", "--data-dir", str(root), "--out", str(tmp_path / "run"), "--quick", "--quiet",
            "--balance", "oversample",
            "--augment", "horizontal_flip,width_shift_range=0.125,height_shift_range=0.125,fill_mode=constant"]
    assert run_command("train", argv) == 0
    data, _ = train.load_data(train.parse_args(argv))
    assert len(fitted_on) == 1
    np.testing.assert_array_equal(fitted_on[0], data["train"].x)  # not validation, not test
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    mean = keras.ops.convert_to_numpy(model.get_layer("standardize").mean).ravel()
    np.testing.assert_allclose(mean, (data["train"].x / 255.0).mean(axis=(0, 1, 2)), atol=1e-4)
    run = json.loads((tmp_path / "run" / "metrics.json").read_text())["runs"]["cifar_convnet"]
    assert run["test"]["n"] == 200 and "true_labels" not in run["test"]  # --quick: 200 test images


def test_train_on_some_cifar10_classes_relabels_them_from_0(image_tree, tmp_path):
    from experiments import train

    root, _ = image_tree
    argv = ["--data", "cifar10", "--data-dir", str(root), "--classes", "ship,airplane,dog"]
    data, record = train.load_data(train.parse_args(argv))
    assert data.class_names == ("airplane", "dog", "ship") and record["classes"] == ["airplane", "dog", "ship"]
    assert record["sizes"] == {"train": 576, "validation": 144, "test": 90}
    assert np.bincount(data["test"].y).tolist() == [30, 30, 30]


@pytest.mark.slow
def test_a_diverged_run_is_reported_as_diverged(image_tree, tmp_path):
    root, _ = image_tree
    out = tmp_path / "run"
    assert run_command("train", ["--data", "benchmark", "--data-dir", str(root), "--out", str(out), "--quick",
                                 "--quiet",
                                 "--optimizer", "sgd", "--lr", "1e6"]) == 0
    run = json.loads((out / "metrics.json").read_text())["runs"]["small_cnn"]
    assert run["training"]["status"] == "diverged at epoch 1" and "dev" not in run
    assert "loss became NaN or infinite at epoch 1" in (out / "report.md").read_text()


def make_corrupt_batches(root):
    (root / "cifar-10-batches-py").mkdir(parents=True)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x02garbage")


def make_wrong_shape_tree(root):
    from PIL import Image

    from keras_apml.cifar10 import CIFAR10_CLASSES

    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            (root / split / name).mkdir(parents=True)
        Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(root / split / "cat" / "0.png")


@pytest.mark.slow
@pytest.mark.parametrize("setup, extra, message", [
    (lambda root: None, [], "data directory .* does not exist; expected"),
    (lambda root: root.mkdir(), [], "holds no CIFAR-10 data; expected"),
    (make_corrupt_batches, [], "data_batch_1: (corrupt|unsafe)"),
    (make_wrong_shape_tree, [], "image is 28x28 RGB, expected 32x32 RGB"),
    (None, ["--augment", "zca_whitening"], "'zca_whitening' is an ImageDataGenerator argument"),
    (None, ["--relabel", "RELABEL"], "fix.csv names images by position but does not say what data it was made from"),
    (None, ["--epochs", "0"], "expected a positive integer"),
    (None, ["--classes", "cat,dog"], "--classes selects CIFAR-10 classes: it needs --data cifar10"),
    (None, ["--data", "cifar10", "--classes", "car,truck"], "expected distinct names from"),
])
def test_bad_input_is_one_error_line_and_status_2(setup, extra, message, image_tree, tmp_path, capsys):
    root = tmp_path / "data"
    if setup is None:
        root = image_tree[0]
    else:
        setup(root)
    (tmp_path / "fix.csv").write_text("index,label\n0,7\n")
    extra = [str(tmp_path / "fix.csv") if a == "RELABEL" else a for a in extra]
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    status = run_command("train", ["--data", "benchmark", "--data-dir", str(root), "--out", str(out), "--quick",
                                   "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("error: ")
    import re
    assert re.search(message, err[0]), err[0]
    assert (out / "notes.txt").read_text() == "kept"


@pytest.mark.slow
def test_no_network_for_the_download_is_an_error_line(monkeypatch, tmp_path, capsys):
    def offline():
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/: None -- no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    assert run_command("train", ["--data", "cifar10", "--out", str(tmp_path / "run"), "--quick", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: could not download CIFAR-10")


@pytest.mark.slow
def test_a_finished_run_asked_for_again_changes_nothing_and_fresh_starts_afresh(image_tree, tmp_path, capsys):
    root, _ = image_tree
    out = tmp_path / "run"
    argv = ["--data", "benchmark", "--data-dir", str(root), "--out", str(out), "--quick", "--quiet"]
    assert run_command("train", argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert run_command("train", argv) == 0
    assert capsys.readouterr().out.startswith(f"{out} holds a finished run of these settings")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run_command("train", [*argv, "--lr", "0.01"]) == 2  # other settings into a finished run: refused
    assert "other settings (--lr 0.001 there, 0.01 now)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run_command("train", [*argv, "--lr", "0.01", "--fresh"]) == 0
    [aside] = tmp_path.glob("run.replaced-*")
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == before
    assert json.loads((out / "config.json").read_text())["arguments"]["lr"] == 0.01


@pytest.mark.slow
def test_the_real_entry_point_prints_one_line_without_traceback(tmp_path):
    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-m", "experiments.train", "--data-dir", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "run")], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: data directory {tmp_path / 'missing'} does not exist; expected Keras's pickled batches "
        "(cifar-10-batches-py/data_batch_1..5, test_batch) or an image-folder tree train/<class>/*.jpg "
        "and test/<class>/*.jpg"]


@pytest.mark.parametrize("name", ["adversarial", "baseline", "cache", "cifar_transfer", "feature_extraction",
                                  "hyperparams", "imbalance", "label_noise", "make_dataset", "review", "train"])
def test_every_help_begins_with_a_whole_sentence(name, capsys):
    module = importlib.import_module(f"experiments.{name}")
    with pytest.raises(SystemExit):
        module.parse_args(["--help"])
    description = " ".join(capsys.readouterr().out.split("\n\n")[1].split())  # however argparse wraps it
    assert description == module.__doc__.splitlines()[0] and description.endswith(".")


@pytest.mark.slow
def test_help_documents_the_common_flags():
    done = subprocess.run([sys.executable, "-m", "experiments.train", "--help"], cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for flag in ("--data-dir", "--out", "--seed", "--epochs", "--batch-size", "--quick", "--quiet", "--no-cache"):
        assert flag in done.stdout
    text = " ".join(done.stdout.split())  # the cache's place, size and command, however argparse wraps them
    assert "~/.cache/keras_apml" in text and "about 185 MB" in text and "python -m experiments.cache" in text


@pytest.mark.slow
def test_a_log_redirected_to_a_file_has_one_plain_line_per_epoch(image_tree, tmp_path):
    done = subprocess.run([sys.executable, "-m", "experiments.train", "--data", "benchmark", "--data-dir",
                           str(image_tree[0]), "--out", str(tmp_path / "run"), "--quick", "--epochs", "2"],
                          cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stdout and "\x1b" not in done.stdout  # no progress bars, no terminal codes
    epochs = [line for line in done.stdout.splitlines() if " - loss: " in line]
    assert len(epochs) == 2 and all("val_loss" in line and "val_balanced_accuracy" in line for line in epochs)
    # and after each, the time so far and the time left
    timed = [line for line in done.stdout.splitlines() if line.startswith("[1/1] small_cnn: epoch ")]
    assert [line.split(" (")[0] for line in timed] == ["[1/1] small_cnn: epoch 1/2", "[1/1] small_cnn: epoch 2/2"]
    assert all(re.fullmatch(r".* \(\d+:\d\d so far, about \d+:\d\d left\)", line) for line in timed), timed
    # the model kept is the epoch of highest validation balanced accuracy, and the report says which
    training = json.loads((tmp_path / "run" / "metrics.json").read_text())["runs"]["small_cnn"]["training"]
    scores = training["history"]["val_balanced_accuracy"]
    assert training["best_epoch"] == scores.index(max(scores)) + 1
    report = (tmp_path / "run" / "report.md").read_text()
    assert (f"The model keeps the weights of epoch {training['best_epoch']}" in report
            or "The last epoch had the highest validation balanced accuracy" in report)


def test_a_librarys_warning_is_one_line_and_the_handler_is_restored(capsys):
    import warnings

    from experiments import _contract

    def main(argv):
        warnings.warn("May not flag all label issues in class: 2, it has too few examples\n(see "
                      "`min_examples_per_class` argument)", UserWarning, stacklevel=1)
        return 0

    before = warnings.showwarning
    with pytest.raises(SystemExit) as done:
        _contract.run(main, [], tensorflow=False)
    assert done.value.code == 0 and warnings.showwarning is before
    assert capsys.readouterr().err.splitlines() == [
        "warning: May not flag all label issues in class: 2, it has too few examples (see `min_examples_per_class` "
        "argument)"]
