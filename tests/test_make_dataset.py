"""The known-truth dataset command: exact draws and noise counts, the benchmark as a preset, refusals."""

import csv
import json

import numpy as np
import pytest
from conftest import run_command
from PIL import Image

from keras_apml import benchmark, cifar10, noise
from keras_apml.errors import InputError


def truth(out):
    return dict(line.split(",") for line in (out / "truth.csv").read_text().splitlines()[1:])


@pytest.mark.slow
def test_the_car_truck_cat_preset_draws_the_benchmarks_images_and_labels(image_tree, tmp_path, capsys):
    root, _ = image_tree
    out = tmp_path / "ctc"
    assert run_command("make_dataset", ["--data-dir", str(root), "--out", str(out), "--preset", "car_truck_cat",
                                        "--train-counts", "car=20,truck=4,cat=10",
                                        "--test-counts", "car=5,truck=2,cat=3"]) == 0
    bench = benchmark.car_truck_cat(cifar=cifar10.load_cifar10(root), train_counts=(20, 4, 10), dev_counts=(5, 2, 3))
    labels = truth(out)
    names = ("car", "truck", "cat")
    sources = {"train": sorted((root / "train").glob("*/*.png")), "test": sorted((root / "test").glob("*/*.png"))}
    for split, observed, true, idx in (("train", bench["train"].y, bench["train"].y_true, bench["train"].index),
                                       ("test", bench["dev"].y, bench["dev"].y_true, bench["dev"].index)):
        files = sorted((out / split).glob("*/*.png"), key=lambda p: p.name)
        assert [p.name for p in files] == [f"{i:06d}.png" for i in range(len(observed))]
        assert [p.parent.name for p in files] == [names[k] for k in observed]
        assert [labels[f"{split}/{p.parent.name}/{p.name}"] for p in files] == [names[k] for k in true]
        assert all(p.read_bytes() == sources[split][j].read_bytes() for p, j in zip(files, idx))
    made = json.loads((out / "dataset.json").read_text())
    assert made["splits"]["train"]["wrong"] == {"cat->car": 7} and made["splits"]["test"]["wrong"] == {"cat->car": 2}
    assert made["splits"]["train"]["true"] == {"car": 20, "truck": 4, "cat": 10}
    assert capsys.readouterr().out == f"dataset: {out} (truth in {out / 'truth.csv'})\n"


def four_classes(root, per_class=20):
    for c, name in enumerate("abcd"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((8, 8, 3), c * 50 + i, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_a_flat_source_makes_a_flat_tree_whose_truth_reads_back_whatever_its_class_names(tmp_path):
    """Class names holding a comma and a quote are quoted in truth.csv; a flat source gives a flat tree, which every
    study splits (train, validation and test) as it splits any."""
    from experiments import _contract, make_dataset

    from keras_apml import folders

    root = tmp_path / "src"
    for c, name in enumerate(('say "cheese"', "a, b")):
        (root / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(np.full((8, 8, 3), c * 100 + i, np.uint8)).save(root / name / f"{i}.png")
    out = tmp_path / "study"
    with pytest.raises(SystemExit) as done:
        _contract.run(make_dataset.main, ["--data-dir", str(root), "--out", str(out), "--noise-rate", "0.25"],
                      tensorflow=False)
    assert done.value.code == 0 and sorted(p.name for p in out.iterdir()) == [
        "a, b", "dataset.json", 'say "cheese"', "truth.csv"]
    text = (out / "truth.csv").read_text()
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["path", "label"] and {r[1] for r in rows[1:]} == {"a, b", 'say "cheese"'} and len(rows) == 25
    assert '\n"say ""cheese""/0000' in text and ',"a, b"\n' in text  # quoted as CSV quotes
    data = folders.load(out, truth=out / "truth.csv")
    assert set(data) == {"train", "validation", "test"} and data.class_names == ("a, b", 'say "cheese"')
    assert sum(len(split) for split in data.values()) == 24
    assert sum(int(np.sum(split.y != split.y_true)) for split in data.values()) == 6  # 0.25 of each class's 12


@pytest.mark.slow
def test_pairs_and_a_symmetric_rate_relabel_exact_counts(tmp_path):
    root = four_classes(tmp_path / "src")
    out = tmp_path / "study"
    assert run_command("make_dataset", ["--data-dir", str(root), "--out", str(out), "--train-counts",
                                        "a=20,b=10,c=8,d=4", "--noise", "b->a:0.5,c->a:0.25,c->b:0.25",
                                        "--seed", "5"]) == 0
    made = json.loads((out / "dataset.json").read_text())["splits"]["all"]  # a flat source: one split, written flat
    assert made["wrong"] == {"b->a": 5, "c->a": 2, "c->b": 2}
    assert made["observed"] == {"a": 27, "b": 7, "c": 4, "d": 4}
    assert len(truth(out)) == 42 and not (out / "test").exists() and not (out / "train").exists()  # flat, as its source
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    idx, y_true, y_observed = noise.draw(y, [(k, 50) for k in range(4)], rng, symmetric=0.2)
    assert sorted(idx) == list(range(200)) and [int(np.sum((y_true == k) & (y_observed != k))) for k in range(4)] \
        == [10, 10, 10, 10]


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--noise", "b->z:0.5"], "noise pair 'b->z:0.5': no class 'z'; the classes are a, b, c, d"),
    (["--noise", "b->a:0.7,b->c:0.4"], "the noise rates out of b add up to 1.1, more than 1"),
    (["--noise", "b-a:0.5"], "is not of the form source->target:rate"),
    (["--train-counts", "a=21"], "--train-counts: a asks for 21 images; the source split has 20"),
    (["--classes", "a"], "--classes needs at least 2 distinct classes"),
    (["--test-counts", "a=2"], "--test-counts: "),
    (["--noise-rate", "1.5"], "argument --noise-rate: expected a number <= 1, got 1.5"),
    (["--noise", "b->a:0.2,b->a:0.3"], "noise pair b->a is given twice; give each pair once"),
])
def test_bad_requests_are_one_error_line_and_write_nothing(tmp_path, capsys, argv, message):
    root = four_classes(tmp_path / "src")
    out = tmp_path / "study"
    assert run_command("make_dataset", ["--data-dir", str(root), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".study*"))  # nothing written, not even a partial tree


@pytest.mark.slow
def test_an_existing_out_is_left_alone(tmp_path, capsys):
    root = four_classes(tmp_path / "src")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "mine.txt").write_text("kept")
    assert run_command("make_dataset", ["--data-dir", str(root), "--out", str(tmp_path / "study")]) == 2
    assert "exists; make_dataset writes a new directory" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "study").iterdir()] == ["mine.txt"]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["inside", "around"])
def test_out_and_the_source_tree_must_not_overlap(tmp_path, capsys, where):
    root = four_classes(tmp_path / "outer" / "src")
    data_dir, out = (root, root / "study") if where == "inside" else (root, tmp_path / "outer")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert run_command("make_dataset", ["--data-dir", str(data_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "overlap" in err[0] and "choose an --out outside it" in err[0], err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_parse_pairs_refuses_a_class_relabelled_as_itself():
    with pytest.raises(InputError, match="relabels a class as itself"):
        noise.parse_pairs("a->a:0.1", ["a", "b"])


@pytest.fixture(scope="module")
def study_tree(tmp_path_factory):
    """A 4-class 48x48 study dataset with known truth, made by the command from a clean source."""
    source = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 12)):
        for c, name in enumerate(("daisy", "rose", "tulip", "violet")):
            (source / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(60 * c + 40, 30, (48, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(source / split / name / f"{i}.png")
    out = tmp_path_factory.mktemp("study") / "flowers"
    assert run_command("make_dataset", ["--data-dir", str(source), "--out", str(out), "--train-counts",
                                        "daisy=40,rose=16,tulip=12,violet=12", "--noise", "tulip->daisy:0.5"]) == 0
    return out


def scored_sets(metrics):
    """Every split a run's metrics scored with the true labels too, wherever it lies in metrics.json."""
    if isinstance(metrics, dict):
        if "confusion_matrix" in metrics and "true_labels" in metrics:
            yield metrics
        for value in metrics.values():
            yield from scored_sets(value)


@pytest.mark.slow
@pytest.mark.parametrize("study, extra", [
    ("baseline", []),
    ("imbalance", ["--strategies", "none,two_stage", "--model", "small_cnn"]),
    ("label_noise", ["--folds", "2", "--model", "small_cnn"]),
    ("hyperparams", ["--sweep", "lr", "--model", "small_cnn"]),
])
def test_every_car_truck_cat_study_runs_on_a_folder_dataset_with_its_truth(study_tree, tmp_path, study, extra):
    out = tmp_path / "run"
    argv = ["--data-dir", str(study_tree), "--true-labels", str(study_tree / "truth.csv"), "--out", str(out),
            "--quick", "--quiet", *extra]
    assert run_command(study, argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # Every dev score (the 48 test images: 12 per class, 6 of the tulips labelled daisy) against both label sets.
    dev = [m for m in scored_sets(metrics) if m["n"] == 48]
    assert dev and all(np.sum(m["confusion_matrix"], axis=1).tolist() == [18, 12, 6, 12] for m in dev)
    assert all(np.sum(m["true_labels"]["confusion_matrix"], axis=1).tolist() == [12, 12, 12, 12] for m in dev)
    assert all(list(m["per_class_accuracy"]) == ["daisy", "rose", "tulip", "violet"] for m in dev)
    if study == "label_noise":
        train = metrics["runs"]["detection"]["train"]
        assert train["wrong"] == 6  # round(0.5 * 12) tulips labelled daisy, as the truth file says
        rows = (out / "flagged_relabel.csv").read_text().splitlines()
        assert rows[0] == "path,label" and len(rows) == train["flagged"] + 1
        assert all((study_tree / row.split(",")[0]).is_file() for row in rows[1:])  # files a person can open


@pytest.mark.slow
def test_train_applies_a_review_list_that_names_images_by_path(study_tree, tmp_path):
    truth_rows = (study_tree / "truth.csv").read_text().splitlines()[1:]
    wrong = [row for row in truth_rows if row.startswith("train/daisy/") and row.endswith(",tulip")]
    (tmp_path / "review.csv").write_text("path,label\n" + "\n".join(wrong) + "\n")
    out = tmp_path / "run"
    assert run_command("train", ["--data-dir", str(study_tree), "--relabel", str(tmp_path / "review.csv"),
                                 "--val-split", "0.25", "--out", str(out), "--quick", "--quiet",
                                 "--true-labels", str(study_tree / "truth.csv")]) == 0
    record = json.loads((out / "config.json").read_text())["data"]["relabel"]
    assert len(wrong) == 6 and record["rows"] == 6 and record["labels_changed"] == 6
    train = json.loads((out / "metrics.json").read_text())["runs"]["cifar_convnet"]["train"]
    assert train["n"] + json.loads((out / "metrics.json").read_text())["runs"]["cifar_convnet"]["validation"]["n"] \
        == 80  # every image of train/, none of test/


@pytest.mark.slow
def test_a_review_list_naming_an_unknown_path_is_refused(study_tree, tmp_path, capsys):
    (tmp_path / "review.csv").write_text("path,label\ntest/daisy/000000.png,tulip\n")
    status = run_command("train", ["--data-dir", str(study_tree), "--relabel", str(tmp_path / "review.csv"),
                                   "--out", str(tmp_path / "run"), "--quick", "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1
    assert "row 1: 'test/daisy/000000.png' is not one of the training images' paths" in err[0]


@pytest.mark.slow
def test_adversarial_and_feature_extraction_take_a_model_of_your_own_folders(study_tree, tmp_path):
    model_run = tmp_path / "model"
    assert run_command("train", ["--data-dir", str(study_tree), "--out", str(model_run), "--quick", "--quiet",
                                 "--model", "small_cnn"]) == 0
    out = tmp_path / "attack"
    assert run_command("adversarial", ["--data-dir", str(study_tree), "--model", str(model_run / "model.keras"),
                                       "--true-labels", str(study_tree / "truth.csv"), "--eps", "0,0.01",
                                       "--target", "rose", "--targeted-images", "5", "--out", str(out),
                                       "--quick", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["runs"]["targeted"]["per_target"]) == {"rose"}
    assert json.loads((out / "config.json").read_text())["images"] == 48  # the test split: 12 of each class
    assert "scored against true labels" in (out / "report.md").read_text()
    features = tmp_path / "features"
    assert run_command("feature_extraction", ["--data-dir", str(study_tree), "--model", str(model_run / "model.keras"),
                                              "--classifiers", "logreg,knn", "--out", str(features), "--quick",
                                              "--quiet"]) == 0
    runs = json.loads((features / "metrics.json").read_text())["runs"]
    assert runs["knn"]["test"]["n"] == 48 and runs["knn"]["train"]["n"] == 80
    assert list(runs["network"]["test"]["per_class_accuracy"]) == ["daisy", "rose", "tulip", "violet"]


@pytest.mark.slow
def test_adversarial_refuses_a_model_of_other_classes(study_tree, tmp_path, capsys, benchmark_model_file):
    status = run_command("adversarial", ["--data-dir", str(study_tree), "--model", str(benchmark_model_file),
                                         "--out", str(tmp_path / "attack"), "--quick", "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1 and "the model has 3 classes; " in err[0], err
    assert err[0].endswith("has 4: daisy, rose, tulip, violet")


@pytest.mark.slow
def test_label_noise_streams_its_images_past_the_memory_budget(study_tree, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--data-dir", str(study_tree), "--true-labels", str(study_tree / "truth.csv"), "--memory-budget", "0.1",
            "--folds", "2", "--model", "small_cnn", "--quick"]
    assert run_command("label_noise", [*argv, "--out", str(out), "--quiet", "--strategy", "smote"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "--strategy smote needs the images in memory" in err[0] and not out.exists()
    assert run_command("label_noise", [*argv, "--out", str(out)]) == 0
    assert "streaming them from their files" in capsys.readouterr().out
    detection = json.loads((out / "metrics.json").read_text())["runs"]["detection"]
    assert detection["train"]["wrong"] == 6 and (out / "flagged.png").is_file()


def test_mirrored_predictions_are_the_mirror_images_predictions():
    from conftest import synthetic_images

    from keras_apml import evaluation, models

    x = synthetic_images(20, seed=4)
    model = models.small_cnn()
    both = evaluation.predict_proba(model, x, mirror=True)
    by_hand = (evaluation.predict_proba(model, x) + evaluation.predict_proba(model, x[:, :, ::-1].copy())) / 2
    np.testing.assert_allclose(both, by_hand, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_labels_from_a_file_through_detection_review_and_retraining(study_tree, tmp_path):
    """The loop on labels that come from a file (the tree's own truth given as --labels: nothing is wrong), with
    file paths throughout: label_noise flags, a review drops one flag, train takes the same --labels and the
    review's export."""
    from keras_apml import review

    truth = str(study_tree / "truth.csv")
    out = tmp_path / "noise"
    assert run_command("label_noise", ["--data-dir", str(study_tree), "--labels", truth, "--true-labels", truth,
                                       "--folds", "2", "--model", "small_cnn", "--out", str(out), "--quick",
                                       "--quiet"]) == 0
    detection = json.loads((out / "metrics.json").read_text())["runs"]["detection"]
    assert detection["train"]["wrong"] == 0  # the labels given are the truth, not the folders (6 tulips as daisies)
    assert f"the observed labels from `{truth}`, the true labels from `{truth}`" in (out / "report.md").read_text()
    reviewed = review.load_review_set(out / "review.npz")
    assert reviewed.flagged >= 1 and all((study_tree / p).is_file() for p in reviewed.paths)
    decisions = review.Decisions(out / "review_decisions.json", reviewed, out / "reviewed_relabel.csv")
    decisions.decide(0, "drop")
    run = tmp_path / "train"
    assert run_command("train", ["--data-dir", str(study_tree), "--labels", truth, "--relabel",
                                 str(out / "reviewed_relabel.csv"), "--val-split", "0.25", "--out", str(run),
                                 "--quick", "--quiet"]) == 0
    text = (run / "report.md").read_text()
    assert f"the observed labels from `{truth}`, not the class folders" in text
    assert "(0 labels changed, 1 image dropped)" in text
