import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DATA, synthetic_images, write_image_tree

from keras_apml import benchmark, cifar10, label_files, npz
from keras_apml.errors import InputError


def write_pickled_batches(root, per_batch=20, seed=0):
    """Keras's cifar-10-batches-py layout, as CIFAR's own protocol-2 pickles of numpy arrays."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        labels = np.arange(per_batch) % 10
        x = synthetic_images(per_batch, seed=seed + i, labels=labels)
        batch = {b"batch_label": name.encode(), b"labels": labels.tolist(),
                 b"data": x.transpose(0, 3, 1, 2).reshape(per_batch, -1), b"filenames": [b"f.png"] * per_batch}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        xs.append(x)
        ys.append(labels)
    return (np.concatenate(xs[:5]), np.concatenate(ys[:5])), (xs[5], ys[5])


def test_pickled_batches_load_exactly(tmp_path):
    (x_train, y_train), (x_test, y_test) = write_pickled_batches(tmp_path)
    (a, b), (c, d) = cifar10.load_cifar10(tmp_path)
    assert a.shape == (100, 32, 32, 3) and a.dtype == np.uint8 and c.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(b, y_train)
    np.testing.assert_array_equal(c, x_test)
    np.testing.assert_array_equal(d, y_test)


def test_image_tree_loads_exactly_and_is_cached(tmp_path, monkeypatch):
    arrays = write_image_tree(tmp_path / "tree", per_class_train=3, per_class_test=2)
    (x_train, y_train), (x_test, y_test) = cifar10.load_cifar10(tmp_path / "tree")
    np.testing.assert_array_equal(x_train, arrays["train"][0])
    np.testing.assert_array_equal(y_train, np.repeat(np.arange(10), 3))
    np.testing.assert_array_equal(x_test, arrays["test"][0])
    assert y_test.dtype == np.int64 and len(y_test) == 20
    assert len(list((tmp_path / "cache").glob("cifar10-*.npz"))) == 1
    assert y_train.dtype == np.int64

    def no_decoding(*args):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(cifar10, "_decode_images", no_decoding)
    (x_again, _), _ = cifar10.load_cifar10(tmp_path / "tree")
    np.testing.assert_array_equal(x_again, x_train)


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "tamper_labels", "drop_hash"])
def test_a_damaged_cache_entry_is_rebuilt_not_trusted(tmp_path, damage):
    arrays = write_image_tree(tmp_path / "tree", per_class_train=2, per_class_test=1)
    cifar10.load_cifar10(tmp_path / "tree")
    [entry] = (tmp_path / "cache").glob("cifar10-*.npz")
    raw = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "garbage":
        entry.write_bytes(b"PK\x03\x04" + bytes(200))
    else:
        with np.load(entry) as f:
            saved = {k: f[k] for k in f.files}
        if damage == "tamper_labels":
            saved["y_train"] = (saved["y_train"] + 1) % 10  # a valid file whose labels were rewritten
        else:
            del saved["__sha256__"]
        np.savez(entry, **saved)
    (x_train, y_train), (x_test, _) = cifar10.load_cifar10(tmp_path / "tree")
    np.testing.assert_array_equal(y_train, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(x_train, arrays["train"][0])
    np.testing.assert_array_equal(x_test, arrays["test"][0])
    assert entry.read_bytes() != b"" and cifar10.cache.load(entry.name) is not None  # healed


def test_a_cache_directory_that_cannot_be_written_is_bypassed_with_one_warning(tmp_path, monkeypatch, capsys):
    arrays = write_image_tree(tmp_path / "tree", per_class_train=1, per_class_test=1)
    (tmp_path / "not_a_dir").write_text("a file")
    monkeypatch.setenv("KERAS_APML_CACHE", str(tmp_path / "not_a_dir"))
    for _ in range(2):
        (x_train, _), _ = cifar10.load_cifar10(tmp_path / "tree")
        np.testing.assert_array_equal(x_train, arrays["train"][0])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: cache directory {tmp_path / 'not_a_dir'} cannot be written")
    assert (tmp_path / "not_a_dir").read_text() == "a file"


def test_environment_variable_names_the_data_dir(tmp_path, monkeypatch):
    write_pickled_batches(tmp_path)
    monkeypatch.setenv("KERAS_APML_DATA", str(tmp_path))
    (x_train, _), _ = cifar10.load_cifar10()
    assert len(x_train) == 100


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "does not exist"),
    (lambda root: root.mkdir(), "holds no CIFAR-10 data"),
    (lambda root: [(root / s / c).mkdir(parents=True) for s in ("train", "test") for c in cifar10.CIFAR10_CLASSES],
     "holds no images"),
])
def test_missing_or_empty_directories_say_what_layout_was_expected(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(InputError, match=message) as e:
        cifar10.load_cifar10(root)
    assert "train/<class>" in str(e.value)


@pytest.mark.parametrize("image, message", [
    (np.zeros((16, 16, 3), np.uint8), "image is 16x16 RGB, expected 32x32 RGB"),
    (np.zeros((32, 32), np.uint8), "image is 32x32 L, expected 32x32 RGB"),
])
def test_images_of_wrong_shape_or_channels_are_refused(tmp_path, image, message):
    from PIL import Image

    write_image_tree(tmp_path, per_class_train=1, per_class_test=1)
    Image.fromarray(image).save(tmp_path / "train" / "cat" / "bad.png")
    with pytest.raises(InputError, match=message):
        cifar10.load_cifar10(tmp_path)


def png_header(width, height):
    """The first chunks of an RGB PNG of the given size, with no pixel data: a decompression bomb's header."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(
        b"IEND", b"")


@pytest.mark.parametrize("size, message", [(100_000, "could be decompression bomb"),
                                           (12_000, "image is 12000x12000 RGB, expected 32x32 RGB")])
def test_huge_images_are_refused_from_their_header(tmp_path, size, message):
    write_image_tree(tmp_path, per_class_train=1, per_class_test=1)
    (tmp_path / "train" / "cat" / "bomb.png").write_bytes(png_header(size, size))
    with pytest.raises(InputError, match=message):
        cifar10.load_cifar10(tmp_path)


def test_corrupt_image_is_refused(tmp_path):
    write_image_tree(tmp_path, per_class_train=1, per_class_test=1)
    (tmp_path / "test" / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="broken.jpg: cannot decode"):
        cifar10.load_cifar10(tmp_path)


def test_download_without_network_names_the_offline_options(monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/...: None -- [Errno -3] no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(InputError, match="could not download CIFAR-10.*--data-dir DIR or set KERAS_APML_DATA"):
        cifar10.load_cifar10()


def test_benchmark_has_the_course_statistics_exactly(cifar_arrays):
    bench = benchmark.car_truck_cat(cifar=cifar_arrays, seed=0)
    assert bench.class_names == ("car", "truck", "cat")
    assert np.bincount(bench["train"].y_true).tolist() == [4476, 449, 700]
    assert np.bincount(bench["train"].y).tolist() == [4949, 449, 227]
    assert np.bincount(bench["dev"].y_true).tolist() == [503, 51, 71]
    assert np.bincount(bench["dev"].y).tolist() == [551, 51, 23]
    for y, y_true, flips in ((bench["train"].y, bench["train"].y_true, 473), (bench["dev"].y, bench["dev"].y_true, 48)):
        wrong = y != y_true
        assert wrong.sum() == flips
        assert set(y_true[wrong]) == {2} and set(y[wrong]) == {0}  # only cats, only to car
    (x_tr, y_tr), (x_te, y_te) = cifar_arrays
    cifar_label = np.array(benchmark.BENCHMARK_FROM_CIFAR)
    np.testing.assert_array_equal(y_tr[bench["train"].index], cifar_label[bench["train"].y_true])
    np.testing.assert_array_equal(y_te[bench["dev"].index], cifar_label[bench["dev"].y_true])
    np.testing.assert_array_equal(bench["train"].x, x_tr[bench["train"].index])
    assert len(np.unique(bench["train"].index)) == 5625 and len(np.unique(bench["dev"].index)) == 625


def test_benchmark_is_deterministic_per_seed(cifar_arrays):
    a = benchmark.car_truck_cat(cifar=cifar_arrays, seed=3)
    b = benchmark.car_truck_cat(cifar=cifar_arrays, seed=3)
    c = benchmark.car_truck_cat(cifar=cifar_arrays, seed=4)
    np.testing.assert_array_equal(a["train"].index, b["train"].index)
    np.testing.assert_array_equal(a["train"].y, b["train"].y)
    assert not np.array_equal(a["train"].index, c["train"].index)
    assert not np.array_equal(a["dev"].y != a["dev"].y_true, c["dev"].y != c["dev"].y_true)


def test_benchmark_counts_and_noise_are_parameters(cifar_arrays):
    bench = benchmark.car_truck_cat(cifar=cifar_arrays, train_counts=(100, 20, 10), dev_counts=(10, 5, 4),
                                    cat_to_car=0.5)
    assert np.bincount(bench["train"].y).tolist() == [105, 20, 5]
    assert np.bincount(bench["dev"].y).tolist() == [12, 5, 2]
    with pytest.raises(InputError, match="has 5000 automobile images, the benchmark asks for 6000"):
        benchmark.car_truck_cat(cifar=cifar_arrays, train_counts=(6000, 1, 1))


def write_course_pickle(path, x_uint8, labels):
    pairs = [((img.transpose(2, 0, 1).astype(np.float32) / 127.5) - 1.0, int(lbl)) for img, lbl in zip(x_uint8, labels)]
    path.write_bytes(pickle.dumps(pairs))


def test_course_pickle_is_read_as_uint8_channels_last(tmp_path):
    x = synthetic_images(6, seed=1)
    write_course_pickle(tmp_path / "train.pickle", x, [0, 1, 2, 0, 1, 2])
    images, labels = benchmark.load_course_pickle(tmp_path / "train.pickle")
    np.testing.assert_array_equal(images, x)
    assert labels.tolist() == [0, 1, 2, 0, 1, 2]
    bench = benchmark.course_benchmark(tmp_path / "train.pickle", tmp_path / "train.pickle")
    assert bench["train"].y_true is None and bench["dev"].index.tolist() == list(range(6))


def test_course_pickle_with_bad_labels_or_shapes_is_refused(tmp_path):
    write_course_pickle(tmp_path / "bad_label.pickle", synthetic_images(2), [0, 3])
    with pytest.raises(InputError, match=r"labels out of range 0..2"):
        benchmark.load_course_pickle(tmp_path / "bad_label.pickle")
    (tmp_path / "bad_shape.pickle").write_bytes(pickle.dumps([(np.zeros((32, 32, 3), np.float32), 0)]))
    with pytest.raises(InputError, match=r"expected \(3, 32, 32\) channels-first"):
        benchmark.load_course_pickle(tmp_path / "bad_shape.pickle")
    (tmp_path / "truncated.pickle").write_bytes(pickle.dumps([(np.zeros((3, 32, 32)), 0)])[:50])
    with pytest.raises(InputError, match="corrupt"):
        benchmark.load_course_pickle(tmp_path / "truncated.pickle")


@pytest.mark.parametrize("pairs, message", [
    ([(np.full((3, 32, 32), np.nan, np.float32), 0)], "3072 pixel values are NaN or infinite"),
    ([(np.zeros((3, 32, 32), np.float32), 1.7)], "label '1.7' is not a whole number"),
    ([(np.zeros((3, 32, 32), np.float32), float("inf"))], "label 'inf' is not a whole number"),
    ([(np.zeros((3, 32, 32), np.float32), 2 ** 70)], "label '1180591620717411303424' is not a whole number in range"),
    ([(np.zeros((3, 32, 32), np.float32), b"cat")], "label \"b'cat'\" is not a whole number"),
    ([(np.zeros((3, 32, 32), np.float32), True)], "label 'True' is not a whole number"),
    ([np.zeros((3, 32, 32), np.float32)], "expected a non-empty list of \\(image, label\\) pairs"),
    ([(np.zeros((1, 1), np.uint8), 0)], "an image of shape \\(1, 1\\) \\(uint8\\)"),
    ([("not an image", 0)], "an image of shape \\(\\) \\(<U12\\)"),
])
def test_course_pickle_values_are_refused_not_coerced(tmp_path, pairs, message):
    (tmp_path / "bad.pickle").write_bytes(pickle.dumps(pairs))
    with pytest.raises(InputError, match=message):
        benchmark.load_course_pickle(tmp_path / "bad.pickle")


@pytest.mark.parametrize("batch, message", [
    ({b"data": np.full((2, 3072), 1000.0), b"labels": [0, 1]}, "holds float64 values, expected uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"cat", 1]}, "label \"b'cat'\" is not a whole number"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 2 ** 70]}, "is not a whole number in range"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels out of range 0..9"),
    ([1, 2], "not a CIFAR-10 batch"),
])
def test_cifar_batch_values_are_refused_not_coerced(tmp_path, batch, message):
    write_pickled_batches(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(InputError, match=message):
        cifar10.load_cifar10(tmp_path)


class RunsCode:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_and_runs_none(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pickle").write_bytes(pickle.dumps([(RunsCode(marker), 0)]))
    with pytest.raises(InputError, match=r"refused global (posix|os)\.system"):
        benchmark.load_course_pickle(tmp_path / "evil.pickle")
    assert not marker.exists()
    # the same payload through the CIFAR batch reader
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": RunsCode(marker)}))
    with pytest.raises(InputError, match="refused global"):
        cifar10.load_cifar10(tmp_path)
    assert not marker.exists()


def made_from_line(y, index=None):
    """The first line of a file of positions into labels ``y``, as label_noise and review write it."""
    return label_files.MADE_FROM + json.dumps(label_files.provenance(y, index)) + "\n"


def test_relabel_file_applies_names_or_numbers_and_is_recorded(tmp_path):
    y = np.array([0, 0, 0, 1, 2])
    (tmp_path / "fix.csv").write_text(made_from_line(y) + "index,label\n1,cat\n2,1\n4,cat\n")
    y_new, record = label_files.apply_relabel_file(y, tmp_path / "fix.csv", benchmark.BENCHMARK_CLASSES)
    assert y_new.tolist() == [0, 2, 1, 1, 2]
    assert y.tolist() == [0, 0, 0, 1, 2]  # the input is left alone
    assert record["rows"] == 3 and record["labels_changed"] == 2 and len(record["sha256"]) == 64


def test_relabel_file_round_trips_through_the_writer(tmp_path):
    y, index = np.zeros(4, int), np.array([7, 3, 9, 1])
    made_from = label_files.provenance(y, index, data="the benchmark", split="train")
    label_files.write_relabel_file(tmp_path / "flagged.csv", [3, 0], [2, 1], benchmark.BENCHMARK_CLASSES,
                                   made_from=made_from)
    lines = (tmp_path / "flagged.csv").read_text().splitlines()
    assert lines[0] == label_files.MADE_FROM + json.dumps(made_from, sort_keys=True)
    assert lines[1:] == ["index,label", "3,cat", "0,truck"]
    y_new, _ = label_files.apply_relabel_file(y, tmp_path / "flagged.csv", benchmark.BENCHMARK_CLASSES,
                                              made_from=made_from)
    assert y_new.tolist() == [1, 0, 0, 2]
    with pytest.raises(ValueError, match="must say what they are positions in"):
        label_files.write_relabel_file(tmp_path / "other.csv", [3], [2], benchmark.BENCHMARK_CLASSES)


@pytest.mark.parametrize("labels, index, about", [
    ([0, 0, 0, 0, 1], None, "other labels"),
    ([0, 0, 0, 0], None, "fewer images"),
    ([0, 0, 0, 0], [7, 3, 9, 2], "the same labels of other images (another draw)")])
def test_a_file_of_positions_made_from_other_data_is_refused(tmp_path, labels, index, about):
    y, source = np.zeros(4, int), np.array([7, 3, 9, 1])
    label_files.write_relabel_file(tmp_path / "fix.csv", [1], [2], benchmark.BENCHMARK_CLASSES,
                                   made_from=label_files.provenance(labels, index, subset="quick"))
    before = (tmp_path / "fix.csv").read_bytes()
    with pytest.raises(InputError, match="was made from .* images \\(subset quick; labels .*\\), not from these "
                                         "training images: 4 images .* its positions would name other images"):
        label_files.apply_relabel_file(y, tmp_path / "fix.csv", benchmark.BENCHMARK_CLASSES,
                                       made_from=label_files.provenance(y, source))
    assert (tmp_path / "fix.csv").read_bytes() == before


def test_a_file_of_positions_that_does_not_say_what_it_was_made_from_is_refused(tmp_path):
    (tmp_path / "fix.csv").write_text("index,label\n1,cat\n")
    with pytest.raises(InputError, match="names images by position but does not say what data it was made from"):
        label_files.apply_relabel_file(np.zeros(5, int), tmp_path / "fix.csv", benchmark.BENCHMARK_CLASSES)
    (tmp_path / "fix.csv").write_text(label_files.MADE_FROM + "[[[[\nindex,label\n1,cat\n")
    with pytest.raises(InputError, match="its line '# made from:' is not as this tool writes it"):
        label_files.apply_relabel_file(np.zeros(5, int), tmp_path / "fix.csv", benchmark.BENCHMARK_CLASSES)
    (tmp_path / "fix.csv").write_text(label_files.MADE_FROM + "[" * 100_000 + "\nindex,label\n1,cat\n")
    with pytest.raises(InputError, match="is not as this tool writes it"):
        label_files.apply_relabel_file(np.zeros(5, int), tmp_path / "fix.csv", benchmark.BENCHMARK_CLASSES)


@pytest.mark.parametrize("row, message", [("9,car", "index '9' is not in 0..4"), ("1,dog", "label 'dog' is not one of"),
                                          ("1", "should be 'index,label'"), ("1,car,x", "should be 'index,label'"),
                                          ("²,car", "index '²' is not in 0..4"),
                                          ("1,²", "label '²' is not one of"),
                                          ("1,car\n1,cat", "rows 1 and 2 both relabel index 1"),
                                          ("99999999999999999999999,car", "is not in 0..4")])
def test_bad_relabel_rows_are_refused(tmp_path, row, message):
    (tmp_path / "fix.csv").write_text(made_from_line(np.zeros(5, int)) + f"index,label\n{row}\n")
    with pytest.raises(InputError, match=message):
        label_files.apply_relabel_file(np.zeros(5, int), tmp_path / "fix.csv", benchmark.BENCHMARK_CLASSES)


def test_a_relabel_file_that_is_not_utf8_is_refused(tmp_path):
    (tmp_path / "fix.csv").write_bytes("index,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="is not UTF-8 text"):
        label_files.apply_relabel_file(np.zeros(5, int), tmp_path / "fix.csv", benchmark.BENCHMARK_CLASSES)
    (tmp_path / "fix.csv").write_bytes(b"\xef\xbb\xbfpath,label\na.png,car\n")
    with pytest.raises(InputError, match="starts with a byte-order mark .* save it as plain UTF-8"):
        label_files.apply_relabel_file(np.zeros(1, int), tmp_path / "fix.csv", benchmark.BENCHMARK_CLASSES,
                                       paths=["a.png"])


def test_only_regular_files_of_a_bounded_size_are_read(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # opened for reading, it would wait for a writer for ever
    for path, message in ((Path("/dev/zero"), "is not a regular file"), (tmp_path / "fifo", "is not a regular file"),
                          (tmp_path, "is not a regular file"), (tmp_path / "missing.csv", "cannot read")):
        with pytest.raises(InputError, match=f"relabel file {path} {message}|{message} relabel file {path}"):
            label_files.apply_relabel_file(np.zeros(5, int), path, benchmark.BENCHMARK_CLASSES)
    (tmp_path / "big.csv").write_bytes(b"#" * 2000)
    with pytest.raises(InputError, match="is larger than the 0 MiB such a file may be|larger than the"):
        label_files.read_text(tmp_path / "big.csv", "relabel file", limit=1000)


def test_npz_files_never_hold_pickles(tmp_path):
    npz.save_arrays(tmp_path / "a.npz", x=np.arange(3), names=np.array(["a", "b"]))
    loaded = npz.load_arrays(tmp_path / "a.npz")
    assert loaded["x"].tolist() == [0, 1, 2] and loaded["names"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="object arrays"):
        npz.save_arrays(tmp_path / "b.npz", x=np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="corrupt or unsafe"):
        npz.load_arrays(tmp_path / "pickled.npz")
    raw = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "a.npz").write_bytes(raw[: len(raw) // 2])  # truncated
    with pytest.raises(InputError, match="corrupt or unsafe .npz \\(BadZipFile"):
        npz.load_arrays(tmp_path / "a.npz")


@pytest.mark.skipif(not REAL_DATA, reason="set KERAS_APML_DATA to a CIFAR-10 directory to run the real-data smoke test")
def test_real_cifar10_smoke():
    (x_train, y_train), (x_test, y_test) = cifar10.load_cifar10(REAL_DATA)
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert np.bincount(y_train).tolist() == [5000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
    bench = benchmark.car_truck_cat(cifar=((x_train, y_train), (x_test, y_test)))
    assert np.bincount(bench["train"].y).tolist() == [4949, 449, 227]
    assert np.bincount(bench["dev"].y).tolist() == [551, 51, 23]
