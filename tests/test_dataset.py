"""The one dataclass every source returns: its splits, the --quick subset, validation, joining, classes, files."""

import numpy as np
import pytest

from keras_apml import benchmark, cifar10, folders
from keras_apml.dataset import Dataset, Split
from keras_apml.errors import InputError


def toy(n_train=40, n_test=20):
    """Three classes in the proportions 2:1:1, each image's value its position, true labels and paths known."""
    def split(n, offset, name):
        y = np.tile([0, 0, 1, 2], n // 4)
        y_true = np.where(np.arange(n) % 8 == 1, 2, y)  # every eighth image is really a cat
        return Split(np.arange(offset, offset + n).reshape(n, 1, 1, 1), y, y_true,
                     tuple(f"{name}/{i:03d}.png" for i in range(n)), np.arange(n) + 1000)
    return Dataset({"train": split(n_train, 0, "train"), "test": split(n_test, 500, "test")}, ("car", "truck", "cat"),
                   "toy")


def test_quick_is_stratified_in_order_and_keeps_everything_in_step():
    data = toy().quick(8, 4, seed=0)
    train, test = data["train"], data["test"]
    assert len(train) == 8 and len(test) == 4
    assert np.bincount(train.y).tolist() == [4, 2, 2] and np.bincount(test.y).tolist() == [2, 1, 1]
    positions = train.x.ravel()
    assert np.all(np.diff(positions) > 0)  # kept in their order
    np.testing.assert_array_equal(train.index, positions + 1000)
    assert train.paths == tuple(f"train/{p:03d}.png" for p in positions)
    np.testing.assert_array_equal(train.y_true, np.where(positions % 8 == 1, 2, np.tile([0, 0, 1, 2], 10)[positions]))
    assert np.array_equal(toy().quick(8, 4, seed=0)["train"].x, train.x)
    assert not np.array_equal(toy().quick(8, 4, seed=1)["train"].x, train.x)
    assert toy(8, 4).quick(500, 200)["train"].x.ravel().tolist() == list(range(8))  # fewer than asked: all of them


def test_validation_is_split_off_train_stratified_once():
    data = toy().with_validation(0.25, seed=0)
    assert list(data.splits) == ["train", "validation", "test"]
    assert (len(data["train"]), len(data["validation"]), len(data["test"])) == (30, 10, 20)
    assert np.bincount(data["validation"].y).tolist() == [5, 2, 3] or np.bincount(data["validation"].y).tolist() \
        == [5, 3, 2]
    assert set(data["train"].paths).isdisjoint(data["validation"].paths)
    assert data.with_validation(0.5) is data  # there is one already


def test_train_and_test_joins_validation_into_train_and_names_the_test_split():
    data = toy().with_validation(0.25, seed=0).train_and_test("dev")
    assert list(data.splits) == ["train", "dev"]
    assert len(data["train"]) == 40 and sorted(data["train"].x.ravel().tolist()) == list(range(40))
    assert data["train"].paths[-1] in toy().with_validation(0.25, seed=0)["validation"].paths
    with pytest.raises(InputError, match="toy has no test split"):
        Dataset({"train": toy()["train"]}, ("a",), "toy").train_and_test()


def test_streamed_images_are_not_joined(tmp_path):
    streamed = folders.FileImages(tmp_path, ["a.png", "b.png"], (4, 4))
    part = Split(streamed, np.array([0, 1]), paths=("a.png", "b.png"))
    data = Dataset({"train": part, "validation": part, "test": part}, ("a", "b"))
    assert data.streamed and not toy().streamed
    with pytest.raises(InputError, match="cannot be joined here: raise --memory-budget"):
        data.train_and_test()


def test_only_classes_keeps_those_classes_relabelled_in_dataset_order():
    y = np.repeat(np.arange(10), 3)
    data = Dataset({"train": Split(np.arange(30), y)}, cifar10.CIFAR10_CLASSES)
    kept = data.only_classes(["ship", "airplane", "cat"])
    assert kept.class_names == ("airplane", "cat", "ship") and kept.notes == {"classes": ["airplane", "cat", "ship"]}
    np.testing.assert_array_equal(kept["train"].x, [0, 1, 2, 9, 10, 11, 24, 25, 26])
    np.testing.assert_array_equal(kept["train"].y, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    noisy = Dataset({"train": Split(np.arange(3), np.array([0, 2, 0]), np.array([0, 2, 1]))}, ("car", "truck", "cat"))
    kept = noisy.only_classes(["car", "cat"])  # kept when both its observed and its true class are: not image 2
    assert kept["train"].x.tolist() == [0, 1] and kept["train"].y.tolist() == [0, 1]
    assert kept["train"].y_true.tolist() == [0, 1]
    for bad in (["ship", "car"], ["ship", "ship"], []):
        with pytest.raises(InputError, match="expected distinct names from"):
            data.only_classes(bad)


def test_a_dataset_saves_and_loads_without_pickle(cifar_arrays, tmp_path):
    bench = benchmark.car_truck_cat(cifar=cifar_arrays, train_counts=(30, 5, 6), dev_counts=(5, 2, 3))
    bench.save(tmp_path / "bench.npz")
    loaded = Dataset.load(tmp_path / "bench.npz")
    assert loaded.class_names == bench.class_names and list(loaded.splits) == ["train", "dev"]
    for name in ("train", "dev"):
        for field in ("x", "y", "y_true", "index"):
            np.testing.assert_array_equal(getattr(loaded[name], field), getattr(bench[name], field))
        assert loaded[name].paths is None
    toy().save(tmp_path / "toy.npz")
    assert Dataset.load(tmp_path / "toy.npz")["test"].paths == toy()["test"].paths
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(InputError, match="not a saved dataset"):
        Dataset.load(tmp_path / "other.npz")


def test_an_unknown_split_is_named_with_those_there_are():
    with pytest.raises(KeyError, match="no split 'dev'; this dataset has train, test"):
        toy()["dev"]


def test_a_dataset_is_a_read_only_mapping_of_its_splits_with_a_short_repr():
    from collections.abc import Mapping

    x = np.zeros((50_000, 32, 32, 3), np.uint8)
    data = Dataset({"train": Split(x, np.zeros(50_000, int)),
                    "test": Split(x[:3], np.zeros(3, int), paths=("a.png", "b.png", "c.png"))}, ("cat", "dog"), "mine")
    assert isinstance(data, Mapping) and list(data) == ["train", "test"] and len(data) == 2 and "test" in data
    assert [name for name, _ in data.items()] == ["train", "test"]
    assert repr(data) == "Dataset('mine': 2 classes (cat, dog); train 50000, test 3 images)"
    assert repr(data["test"]) == "Split(3 images of 32x32x3, with paths)"
    with pytest.raises(TypeError):
        data["validation"] = data["train"]
