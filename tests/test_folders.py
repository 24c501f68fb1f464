"""Image-folder datasets of any classes, formats and sizes: layouts, conversions, splits, the cache, bad trees."""

import numpy as np
import pytest
from PIL import Image

from keras_apml import folders, label_files
from keras_apml.cifar10 import CIFAR10_CLASSES
from keras_apml.errors import InputError


def write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(array) if mode is None else Image.fromarray(array, mode)).save(path)


def rgb(seed, size=(16, 16)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def class_tree(root, classes, per_class, size=(16, 16), ext="png"):
    """ROOT/<class>/<i>.<ext>: lossless images whose pixels encode the class and index."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            write(root / name / f"{i:03d}.{ext}", np.full((*size, 3), (c * 20, i, 7), dtype=np.uint8))
    return root


@pytest.mark.parametrize("k", [2, 4, 12])
def test_a_class_folder_tree_splits_stratified_with_exact_counts(tmp_path, k):
    classes = [f"class_{c:02d}" for c in range(k)]
    data = folders.load(class_tree(tmp_path / "tree", classes, per_class=10), val_fraction=0.25, seed=3)
    assert data.class_names == tuple(classes) and data.layout == "class folders" and data.image_size == (16, 16)
    assert {s: len(split) for s, split in data.splits.items()} == {"train": 6 * k, "validation": 2 * k, "test": 2 * k}
    for name, split in data.splits.items():
        assert np.array_equal(np.bincount(split.y, minlength=k), np.full(k, 6 if name == "train" else 2))
        for image, label, path in zip(split.x, split.y, split.paths):  # each image is the file its path names
            assert path.startswith(classes[label] + "/") and image[0, 0, 0] == label * 20
            assert image[0, 0, 1] == int(path.split("/")[1][:3])
    again = folders.load(tmp_path / "tree", val_fraction=0.25, seed=3)
    assert again["test"].paths == data["test"].paths
    assert folders.load(tmp_path / "tree", val_fraction=0.5, seed=3)["test"].paths == data["test"].paths
    other = folders.load(tmp_path / "tree", val_fraction=0.25, seed=4)
    assert other["test"].paths != data["test"].paths


def test_split_folders_are_kept_as_given(tmp_path):
    root = tmp_path / "tree"
    class_tree(root / "train", ["a", "b", "c"], per_class=4)
    class_tree(root / "test", ["a", "b", "c"], per_class=2)
    data = folders.load(root, val_fraction=0)
    assert data.layout == "split folders (train, test)" and set(data.splits) == {"train", "test"}
    assert data["train"].paths[:2] == ("train/a/000.png", "train/a/001.png")
    assert np.array_equal(data["test"].y, [0, 0, 1, 1, 2, 2])
    split = folders.load(root, val_fraction=0.25, seed=1)  # no val/: one image of each class split off train
    assert [len(split[s].y) for s in ("train", "validation", "test")] == [9, 3, 6]
    assert set(split["train"].paths) | set(split["validation"].paths) == set(data["train"].paths)
    class_tree(root / "val", ["a", "b", "c"], per_class=1)
    given = folders.load(root, val_fraction=0.25)
    assert given.layout == "split folders (train, val, test)" and given["validation"].paths[0] == "val/a/000.png"


def test_every_format_and_mode_becomes_rgb_uint8(tmp_path):
    root = tmp_path / "tree"
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    write(root / "a" / "gray.png", gray, "L")
    write(root / "a" / "palette.gif", np.zeros((16, 16, 3), np.uint8))  # Pillow writes GIF as a palette image
    rgba = np.dstack([rgb(1), np.full((16, 16), 10, np.uint8)])
    write(root / "a" / "rgba.png", rgba, "RGBA")
    write(root / "b" / "sixteen.png", gray.astype(np.uint16) * 257)  # 16-bit grayscale
    Image.fromarray(rgb(2)).convert("CMYK").save(root / "b" / "cmyk.jpg")
    write(root / "b" / "plain.bmp", rgb(3))
    write(root / "b" / "image.webp", rgb(4))
    data = folders.load(root, val_fraction=0, test_fraction=0)
    x, y, paths = data["train"].x, data["train"].y, data["train"].paths
    images = dict(zip(paths, x))
    assert x.dtype == np.uint8 and x.shape == (7, 16, 16, 3)
    assert np.array_equal(images["a/gray.png"], np.repeat(gray[..., None], 3, axis=2))
    assert np.array_equal(images["a/rgba.png"], rgba[..., :3])  # alpha dropped, colours as stored
    assert np.array_equal(images["b/sixteen.png"], np.repeat(gray[..., None], 3, axis=2))  # scaled, not clipped
    assert np.array_equal(images["b/plain.bmp"], rgb(3))
    assert Image.open(root / "b" / "sixteen.png").mode.startswith("I")
    assert np.abs(images["b/cmyk.jpg"].astype(int) - rgb(2)).mean() < 40  # JPEG, through CMYK and back


def test_mixed_sizes_need_an_image_size_and_are_resized_with_antialiasing(tmp_path):
    root = tmp_path / "tree"
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[::2] = 255  # one-pixel stripes: a plain subsample would give all black or all white
    write(root / "a" / "big.png", stripes)
    write(root / "b" / "small.png", rgb(0, (32, 48)))
    with pytest.raises(InputError, match=r"come in 2 sizes \(48x32, 64x64, \.\.\.\): pass --image-size"):
        folders.load(root, val_fraction=0, test_fraction=0)
    data = folders.load(root, image_size=(8, 8), val_fraction=0, test_fraction=0)
    x, paths = data["train"].x, data["train"].paths
    assert x.shape == (2, 8, 8, 3) and data.image_size == (8, 8)
    big = x[paths.index("a/big.png")]
    assert 100 < big.mean() < 155 and big.std() < 30  # averaged grey, not aliased stripes


@pytest.mark.parametrize("tree, message", [
    ("one_class", "holds 1 class folder; an image-folder dataset needs at least 2"),
    ("empty_class", "class folder {root}/b holds no image"),
    ("unreadable", "{root}/b/broken.png: cannot read image"),
    ("extra_test_class", "{root}/test has class folders that train/ lacks: c"),
])
def test_bad_trees_are_refused_with_the_reason(tmp_path, tree, message):
    root = tmp_path / "tree"
    write(root / "a" / "0.png", rgb(0))
    if tree == "one_class":
        pass
    elif tree == "empty_class":
        (root / "b").mkdir()
        (root / "b" / "notes.txt").write_text("not an image")
    elif tree == "unreadable":
        (root / "b").mkdir()
        (root / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    else:
        root = tmp_path / "split"
        for split, names in (("train", "ab"), ("test", "abc")):
            for n in names:
                write(root / split / n / "0.png", rgb(0))
    with pytest.raises(InputError) as e:
        folders.load(root, val_fraction=0, test_fraction=0)
    assert message.format(root=root) in str(e.value)


def test_hidden_files_and_folders_are_not_images_of_the_data_set(tmp_path):
    root = class_tree(tmp_path / "tree", ["a", "b"], per_class=3)
    (root / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble metadata")  # macOS's resource forks
    (root / "b" / ".DS_Store").write_bytes(b"Bud1")
    write(root / ".thumbnails" / "0.png", rgb(9))  # a hidden folder is not a class
    data = folders.load(root, val_fraction=0, test_fraction=0)
    assert data.class_names == ("a", "b")
    assert sorted(data["train"].paths) == ["a/000.png", "a/001.png", "a/002.png", "b/000.png", "b/001.png",
                                           "b/002.png"]


def test_unreadable_files_can_be_skipped_and_are_listed(tmp_path):
    root = class_tree(tmp_path / "tree", ["a", "b"], per_class=3)
    (root / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    data = folders.load(root, val_fraction=0, test_fraction=0, skip_unreadable=True)
    assert len(data["train"].y) == 6
    assert [p for p, _ in data.skipped] == ["b/broken.png"]


def test_the_decoded_tree_is_cached_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    root = class_tree(tmp_path / "tree", ["a", "b"], per_class=3)
    first = folders.load(root, val_fraction=0, test_fraction=0)
    assert len(list((tmp_path / "cache").glob("images-*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again despite the cache")

    with monkeypatch.context() as m:
        m.setattr(folders, "decode", no_decoding)
        m.setattr(folders, "header", no_decoding)  # not even a header read again
        cached = folders.load(root, val_fraction=0, test_fraction=0)
        assert cached.image_size == (16, 16)
    assert cached["train"].paths == first["train"].paths
    assert np.array_equal(cached["train"].x, first["train"].x)
    write(root / "a" / "000.png", np.full((16, 16, 3), 99, np.uint8))
    changed = folders.load(root, val_fraction=0, test_fraction=0)
    assert changed["train"].x[0, 0, 0, 0] == 99


def test_too_few_images_to_split_is_refused(tmp_path):
    root = class_tree(tmp_path / "tree", ["a", "b"], per_class=2)
    with pytest.raises(InputError, match="class 0 has 2 images: too few to split stratified into train, validation"):
        folders.load(root)


@pytest.mark.slow
def test_train_runs_on_a_four_class_48x48_folder_dataset(tmp_path, capsys):
    import json

    import keras
    from conftest import run_command

    root = tmp_path / "flowers"
    for c, name in enumerate(["daisy", "rose", "tulip", "violet"]):
        for i in range(15):
            write(root / name / f"{i}.jpg", (rgb(i, (48, 48)) // 4 + c * 60).astype(np.uint8))
    out = tmp_path / "run"
    argv = ["--data-dir", str(root), "--out", str(out), "--quick", "--quiet", "--tensorboard"]
    assert run_command("train", argv) == 0
    events = sorted(p.relative_to(out / "tensorboard").parts[:2] for p in (out / "tensorboard").rglob("events.*"))
    assert events == [("training", "train"), ("training", "validation")]  # Keras's TensorBoard logs
    record = json.loads((out / "config.json").read_text())["arguments"]
    assert record["data"] == "folder"
    metrics = json.loads((out / "metrics.json").read_text())["runs"]["cifar_convnet"]
    # 12 test images (0.2), then --val-split 0.2 of the other 48 for validation
    assert {s: metrics[s]["n"] for s in ("train", "validation", "test")} == {"train": 38, "validation": 10, "test": 12}
    assert list(metrics["test"]["per_class_accuracy"]) == ["daisy", "rose", "tulip", "violet"]
    model = keras.models.load_model(out / "model.keras")
    assert model.input_shape == (None, 48, 48, 3) and model.output_shape == (None, 4)
    report = (out / "report.md").read_text()
    assert f"your image folders `{root}` (class folders; 4 classes: daisy, rose, tulip, violet; images at 48x48)" \
        in report


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--data", "benchmark", "--image-size", "48"], "--image-size concerns your own image folders: they need --data "
     "folder"),
    (["--data", "folder", "--relabel", "missing.csv"], "cannot read relabel file missing.csv"),
    (["--data", "folder", "--image-size", "7"], "argument --image-size: expected a size like 48 or 48x64 with sides"),
    (["--data", "folder", "--model", "cifar_convnet", "--image-size", "16"], "cifar_convnet cannot take 16x16 images"),
])
def test_train_refuses_what_does_not_apply_to_folder_data(tmp_path, capsys, argv, message):
    from conftest import run_command

    root = class_tree(tmp_path / "tree", ["a", "b"], per_class=10)
    status = run_command("train", ["--data-dir", str(root), "--out", str(tmp_path / "run"), "--quiet", *argv])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, message", [
    ("path,label\na/0.png,a\na/0.png,b\n", "'a/0.png' appears twice"),
    ("path,label\na/0.png,zebra\n", "row 1: class 'zebra' is not one of a, b"),
    ("path,label\na/0.png\n", "row 1 should have 2 fields \\(path,label\\), not 1"),
    ("path,label\na/0.png,a,b\n", "row 1 should have 2 fields \\(path,label\\), not 3"),
    ("path,label\n../elsewhere/0.png,a\n", "row 1: '../elsewhere/0.png' lies outside the data tree"),
    ("path,label\n/etc/0.png,a\n", "row 1: '/etc/0.png' lies outside the data tree"),
])
def test_a_bad_truth_file_is_refused_with_the_row(tmp_path, text, message):
    (tmp_path / "truth.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        label_files.read_labels(tmp_path / "truth.csv", "truth file", ("a", "b"))


def test_a_labels_file_is_read_whole_or_by_a_named_column(tmp_path):
    (tmp_path / "truth.csv").write_text("path,label\n# reviewed\na/0.png,b\r\nb/1.png,a\n")
    assert label_files.read_labels(tmp_path / "truth.csv", "truth file", ("a", "b")) == {"a/0.png": 1, "b/1.png": 0}
    (tmp_path / "wide.csv").write_text("path,clean,worst\na/0.png,a,b\nb/1.png,b,b\n")
    assert label_files.read_labels(f"{tmp_path / 'wide.csv'}:worst", "labels file", ("a", "b")) == {
        "a/0.png": 1, "b/1.png": 1}
    assert label_files.read_labels(f"{tmp_path / 'wide.csv'}:clean", "labels file", ("a", "b")) == {
        "a/0.png": 0, "b/1.png": 1}
    for spec, message in ((f"{tmp_path / 'wide.csv'}:best", "has no column 'best'; its columns: path, clean, worst"),
                          (tmp_path / "wide.csv", "row 1 should have 2 fields"),
                          (f"{tmp_path / 'missing.csv'}:worst", "cannot read labels file"),
                          (tmp_path / "missing.csv", "cannot read labels file")):
        with pytest.raises(InputError, match=message):
            label_files.read_labels(spec, "labels file", ("a", "b"))
    (tmp_path / "short.csv").write_text("path,clean,worst\na/0.png,a\n")
    with pytest.raises(InputError, match="row 2 should have 3 fields \\(path,clean,worst\\), not 2"):
        label_files.read_labels(f"{tmp_path / 'short.csv'}:worst", "labels file", ("a", "b"))


def _two_class_tree(root, per_class=10):
    for c, name in enumerate(("a", "b")):
        for split, n in (("train", per_class), ("test", 4)):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8, 3), 100 * c + i, np.uint8)).save(root / split / name / f"{i}.png")
    return root


def test_labels_from_a_file_replace_the_folders_and_every_training_image_needs_one(tmp_path):
    root = _two_class_tree(tmp_path / "tree")
    train = sorted(p.relative_to(root).as_posix() for p in root.glob("train/*/*.png"))
    flipped = {p: ("b" if "/a/" in p else "a") if p.endswith(("/0.png", "/1.png")) else p.split("/")[1]
               for p in train}  # two images of each class labelled as the other, as a person might
    (tmp_path / "labels.csv").write_text("path,clean,human\n" + "".join(
        f"{p},{p.split('/')[1]},{flipped[p]}\n" for p in train))
    data = folders.load(root, val_fraction=0.2, labels=f"{tmp_path / 'labels.csv'}:human",
                        truth=f"{tmp_path / 'labels.csv'}:clean")
    for name in ("train", "validation"):
        split = data[name]
        assert [split.y[i] for i in range(len(split))] == [("a", "b").index(flipped[p]) for p in split.paths]
        assert [int(t) for t in split.y_true] == [("a", "b").index(p.split("/")[1]) for p in split.paths]
    test = data["test"]  # no row: its folder's label, taken to be right, for both
    assert np.array_equal(test.y, test.y_true) and test.y.tolist() == [0] * 4 + [1] * 4
    assert sum(int(np.sum(data[n].y != data[n].y_true)) for n in ("train", "validation")) == 4
    (tmp_path / "partial.csv").write_text("path,label\n" + "".join(f"{p},a\n" for p in train[:-7]))
    with pytest.raises(InputError, match=r"the labels file .*partial.csv has no row for 7 training image\(s\): "
                                         r"'train/b/3.png', .* and 2 more"):
        folders.load(root, labels=tmp_path / "partial.csv")
    (tmp_path / "stray.csv").write_text("path,label\n" + "".join(f"{p},a\n" for p in [*train, "train/a/99.png"]))
    with pytest.raises(InputError, match=r"stray.csv names 1 path\(s\) that are no image of .*, e.g. "
                                         r"'train/a/99.png'"):
        folders.load(root, labels=tmp_path / "stray.csv")


def test_past_the_memory_budget_images_stay_in_their_files_and_predict_the_same(tmp_path):
    from keras_apml import evaluation, recipe, trainer

    root = tmp_path / "tree"
    for c, name in enumerate(["a", "b", "c"]):
        for i in range(12):
            write(root / name / f"{i}.png", (rgb(c * 100 + i, (20, 24)) // 2 + c * 40).astype(np.uint8))
    arrays = folders.load(root, image_size=(32, 32), val_fraction=0.25)
    streamed = folders.load(root, image_size=(32, 32), val_fraction=0.25, memory_budget=36 * 32 * 32 * 3 - 1)
    assert not arrays.streamed and streamed.streamed
    assert len(list((tmp_path / "cache").glob("images-*.npz"))) == 1  # nothing decoded to cache for a stream
    for split in ("train", "validation", "test"):
        (xa, ya, pa), (xs, ys, ps) = ((d[split].x, d[split].y, d[split].paths) for d in (arrays, streamed))
        assert isinstance(xs, folders.FileImages) and xs.shape == xa.shape and pa == ps and np.array_equal(ya, ys)
        assert np.array_equal(xs[0], xa[0]) and isinstance(xs[1:], folders.FileImages)
    small = recipe.Recipe(model="small_cnn", epochs=1, batch_size=8)
    model = trainer.build(small, arrays["train"].x, 3, seed=0)
    x_test_arrays, x_test_files = arrays["test"].x, streamed["test"].x
    same = evaluation.predict_proba(model, x_test_arrays), evaluation.predict_proba(model, x_test_files)
    assert np.array_equal(*same)
    result, _, _ = trainer.fit(trainer.build(small, streamed["train"].x, 3, seed=0),
                               streamed["train"].x, streamed["train"].y,
                               small.replace(balance="oversample"),
                               validation=(streamed["validation"].x, streamed["validation"].y))
    assert result.epochs_run == 1 and len(result.history["val_balanced_accuracy"]) == 1
    with pytest.raises(InputError, match="--balance smote resamples images in memory"):
        trainer.fit(model, streamed["train"].x, streamed["train"].y, small.replace(balance="smote"))


@pytest.mark.slow
def test_train_streams_past_its_memory_budget(tmp_path, capsys):
    import json

    from conftest import run_command

    root = class_tree(tmp_path / "tree", ["a", "b"], per_class=20, size=(32, 32))
    out = tmp_path / "run"
    assert run_command("train", ["--data-dir", str(root), "--memory-budget", "0.01", "--out", str(out),
                                 "--quick", "--model", "small_cnn"]) == 0
    assert "streaming them from their files" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())["data"]
    assert config["streamed"] is True and config["sizes"] == {"train": 25, "validation": 7, "test": 8}


def test_a_tree_whose_classes_are_named_as_cifar10s_is_your_own_folder_unless_told_otherwise(image_tree, tmp_path):
    """Ten class folders named as CIFAR-10's: every study reads them as your data (truth file and all); the
    benchmark is drawn from them only with --data benchmark, CIFAR-10 read with --data cifar10."""
    from experiments import _data, feature_extraction, label_noise, train

    root = image_tree[0]
    paths = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*/*.png"))
    (tmp_path / "truth.csv").write_text("path,label\n" + "".join(f"{p},{p.split('/')[1]}\n" for p in paths))
    args = label_noise.parse_args(["--data-dir", str(root), "--true-labels", str(tmp_path / "truth.csv"), "--quick"])
    assert args.data == "folder"
    data = _data.load(args, "benchmark")
    assert data.class_names == CIFAR10_CLASSES and set(data) == {"train", "dev"}
    assert np.array_equal(data["train"].y, data["train"].y_true) and len(data["train"]) == 500  # the --quick subset
    assert train.parse_args(["--data-dir", str(root)]).data == "folder"
    assert feature_extraction.parse_args(["--data-dir", str(root), "--model", "m.keras"]).data == "folder"
    drawn = _data.load(label_noise.parse_args(["--data", "benchmark", "--data-dir", str(root), "--quick"]),
                       "benchmark")
    assert drawn.class_names == ("car", "truck", "cat")
    assert train.parse_args(["--data", "cifar10", "--data-dir", str(root)]).data == "cifar10"
    with pytest.raises(InputError, match="--true-labels concerns your own image folders: they need --data folder"):
        label_noise.parse_args(["--data", "benchmark", "--data-dir", str(root), "--true-labels", "t.csv"])
