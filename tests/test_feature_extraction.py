"""experiments.feature_extraction: model resolution, the feature cache, classifiers and their report."""

import json
import os

import numpy as np
import pytest
from conftest import run_command

from keras_apml import features


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture
def shared_cache(module_cache, monkeypatch):
    """One feature cache for the tests below that are not about the cache, so features are extracted once."""
    monkeypatch.setenv("KERAS_APML_CACHE", str(module_cache))


def quick(root, out, *extra):
    return ["--data-dir", str(root), "--out", str(out), "--quick", "--quiet", *extra]


@pytest.mark.slow
def test_features_are_extracted_once_then_read_from_the_cache(image_tree, transfer_model_file, tmp_path,
                                                              monkeypatch):
    root, _ = image_tree
    argv = ["--model", str(transfer_model_file), "--classifiers", "random_forest,knn"]
    assert run_command("feature_extraction", quick(root, tmp_path / "a", *argv)) == 0
    first = json.loads((tmp_path / "a" / "metrics.json").read_text())["runs"]
    assert first["network"]["feature_cache"] == "miss"

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr("keras.Model.predict", no_extraction)
    assert run_command("feature_extraction", quick(root, tmp_path / "b", *argv)) == 0
    second = json.loads((tmp_path / "b" / "metrics.json").read_text())["runs"]
    assert second["network"]["feature_cache"] == "hit"
    assert second["knn"]["test"] == first["knn"]["test"]
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["layer"] == "bn2"


@pytest.mark.slow
def test_every_classifier_is_reported_beside_the_network(image_tree, transfer_model_file, tmp_path, shared_cache):
    root, _ = image_tree
    out = tmp_path / "run"
    assert run_command("feature_extraction", quick(root, out, "--model", str(transfer_model_file), "--scale",
                                                   "--pca", "16", "--layer", "fc2")) == 0
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert list(runs) == ["network", "logreg", "random_forest", "knn", "svm"]
    assert runs["svm"]["pipeline"] == ("StandardScaler() -> PCA(n_components=16, random_state=0) -> StandardScaler() "
                                       "-> Nystroem(n_components=1000, random_state=0) -> SGDClassifier(average=True, "
                                       "n_jobs=-1, random_state=0)")
    assert runs["random_forest"]["pipeline"] == (
        "StandardScaler() -> PCA(n_components=16, random_state=0) -> RandomForestClassifier(criterion='entropy', "
        "max_depth=6, min_samples_leaf=3, n_estimators=50, n_jobs=-1, random_state=0)")
    report = (out / "report.md").read_text()
    assert "Every parameter not written out is scikit-learn" in report
    for name in ("logreg", "random_forest", "knn", "svm"):
        assert runs[name]["test"]["n"] == 200 and runs[name]["train"]["n"] == 500
        assert runs[name]["timing"]["fit_seconds"] >= 0 and (out / f"confusion_{name}.png").is_file()
    table = (out / "report.md").read_text().split("## Comparison")[1]
    assert "| network (softmax) | — |" in table and "| svm |" in table


@pytest.mark.slow
def test_non_convergence_is_reported_not_hidden(image_tree, transfer_model_file, tmp_path, shared_cache, capsys):
    root, _ = image_tree
    out = tmp_path / "run"
    assert run_command("feature_extraction", ["--data-dir", str(root), "--out", str(out), "--quick",
                                              "--model", str(transfer_model_file), "--classifiers", "logreg",
                                              "--max-iter", "1"]) == 0
    logreg = json.loads((out / "metrics.json").read_text())["runs"]["logreg"]
    assert logreg["converged"] is False and "failed to converge" in logreg["warnings"][0]
    assert "note: logreg did not converge" in capsys.readouterr().out
    assert "**Did not converge**" in (out / "report.md").read_text()


@pytest.mark.slow
def test_a_missing_model_names_the_command_that_makes_one(image_tree, tmp_path, monkeypatch, capsys):
    root, _ = image_tree
    monkeypatch.chdir(tmp_path)
    assert run_command("feature_extraction", quick(root, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no trained model at runs/cifar_transfer/*/vgg19.keras; make one with "
                   "`python -m experiments.cifar_transfer --runs vgg19`, or pass --model PATH"]
    (tmp_path / "empty_run").mkdir()
    assert run_command("feature_extraction", quick(root, tmp_path / "run", "--model", "empty_run")) == 2
    assert "empty_run holds no vgg19.keras" in capsys.readouterr().err
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    assert run_command("feature_extraction", quick(root, tmp_path / "run", "--model", "bad.keras")) == 2
    assert capsys.readouterr().err.startswith("error: cannot load model bad.keras")


@pytest.mark.slow
def test_the_newest_cifar_transfer_run_is_the_default(image_tree, transfer_model_file, tmp_path, shared_cache,
                                                      monkeypatch):
    root, _ = image_tree
    monkeypatch.chdir(tmp_path)
    for i, name in enumerate(("older", "newer")):
        folder = tmp_path / "runs" / "cifar_transfer" / name
        folder.mkdir(parents=True)
        (folder / "vgg19.keras").write_bytes(transfer_model_file.read_bytes())
        os.utime(folder / "vgg19.keras", (1000 + i, 1000 + i))
    assert run_command("feature_extraction", quick(root, tmp_path / "run", "--classifiers", "knn")) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_file"].endswith("newer/vgg19.keras")


def test_cached_outputs_key_on_the_images_too(tmp_path):
    class Doubler:
        calls = 0

        def predict(self, ds, verbose=0):
            Doubler.calls += 1
            return np.concatenate([b.numpy() for b in ds]) * 2

    x = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    out, info = features.cached_outputs(Doubler(), {"a": x}, key="k", about="test")
    assert info["cache"] == "miss" and np.allclose(out["a"], x / 255.0 * 2)
    assert features.cached_outputs(Doubler(), {"a": x}, key="k", about="test")[1]["cache"] == "hit"
    assert features.cached_outputs(Doubler(), {"a": x + 1}, key="k", about="test")[1]["cache"] == "miss"
    assert features.cached_outputs(Doubler(), {"a": x}, key="other", about="test")[1]["cache"] == "miss"
    assert Doubler.calls == 3
