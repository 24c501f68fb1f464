"""Data: CIFAR-10 (download, pickled batches or an image-folder tree), the
car/truck/cat benchmark built from it, the course's pickle format, relabel
files, and .npz datasets."""

import csv
import dataclasses
import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from keras_apml import cache, noise
from keras_apml.atomic import atomic_path
from keras_apml.errors import InputError
from keras_apml.progress import StepProgress
from keras_apml.safe_pickle import load_pickle

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
BENCHMARK_CLASSES = ("car", "truck", "cat")
# Benchmark class -> CIFAR-10 label: car=automobile, truck=truck, cat=cat.
BENCHMARK_FROM_CIFAR = (1, 9, 3)
# True car/truck/cat counts of the course data's train and dev splits.
TRAIN_COUNTS, DEV_COUNTS = (4476, 449, 700), (503, 51, 71)
QUICK_SCALE = 20  # --quick draws the benchmark with 1/20 of its images
IMAGE_SHAPE = (32, 32, 3)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def is_hidden(path):
    """Whether a file or folder is hidden (``.name``: macOS's ``._*`` AppleDouble files, ``.DS_Store``, ...)."""
    return Path(path).name.startswith(".")


def is_image_file(path):
    """Whether ``path`` is an image of a data set: a visible file with one of IMAGE_EXTENSIONS."""
    path = Path(path)
    return not is_hidden(path) and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
DATA_ENV = "KERAS_APML_DATA"
EXPECTED_LAYOUT = (
    "expected Keras's pickled batches (cifar-10-batches-py/data_batch_1..5, test_batch) "
    "or an image-folder tree train/<class>/*.jpg and test/<class>/*.jpg"
)


def load_cifar10(data_dir=None, verbose=0):
    """Return CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``: uint8 NHWC images, int64 labels.

    ``verbose`` shows the progress of decoding an image-folder tree (Keras's convention).
    """
    data_dir = data_dir or os.environ.get(DATA_ENV)
    if not data_dir:
        return _download_cifar10()
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"data directory {root} does not exist; {EXPECTED_LAYOUT}")
    for batches in (root / "cifar-10-batches-py", root):
        if (batches / "data_batch_1").is_file():
            return _read_pickled_batches(batches)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return _read_image_folders_cached(root, verbose)
    raise InputError(f"data directory {root} holds no CIFAR-10 data; {EXPECTED_LAYOUT}")


def is_cifar10(data_dir):
    """Whether ``data_dir`` holds CIFAR-10 (Keras's pickled batches, or a tree whose train/ has its ten class
    folders) rather than some other image-folder dataset."""
    root = Path(data_dir).expanduser()
    if any((batches / "data_batch_1").is_file() for batches in (root / "cifar-10-batches-py", root)):
        return True
    train = root / "train"
    return train.is_dir() and tuple(sorted(p.name for p in train.iterdir() if p.is_dir())) == CIFAR10_CLASSES


def _download_cifar10():
    """Keras's own download path, with a clear message when there is no network."""
    import keras  # here, not at the top: folders and --help read this module without TensorFlow

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as e:  # keras.utils.get_file raises a bare Exception offline
        raise InputError(
            f"could not download CIFAR-10 ({str(e).splitlines()[0][:200]}); with no network, "
            f"pass --data-dir DIR or set {DATA_ENV} to a local copy"
        ) from None
    return (x_train, y_train.ravel().astype(np.int64)), (x_test, y_test.ravel().astype(np.int64))


def _read_pickled_batches(directory):
    """Read Keras's ``cifar-10-batches-py`` folder with the restricted unpickler."""
    parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    out = []
    for names in parts.values():
        xs, ys = [], []
        for name in names:
            path = directory / name
            batch = load_pickle(path, encoding="bytes")
            if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
                raise InputError(f"{path}: not a CIFAR-10 batch (no b'data'/b'labels')")
            pixels = batch[b"data"]
            if not isinstance(pixels, np.ndarray) or pixels.ndim != 2 or pixels.shape[1] != 3072:
                raise InputError(f"{path}: b'data' is not an array of images of 3072 values each")
            if pixels.dtype != np.uint8:
                raise InputError(f"{path}: b'data' holds {pixels.dtype} values, expected uint8 pixels 0..255")
            labels = integer_labels(batch[b"labels"], f"{path}: b'labels'")
            if len(pixels) != len(labels):
                raise InputError(f"{path}: {len(pixels)} images but {len(labels)} labels")
            xs.append(pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(labels)
        out.append(_checked(np.concatenate(xs), np.concatenate(ys), str(directory)))
    return tuple(out)


def integer_labels(values, source):
    """Labels as int64 from a list or array of whole numbers; anything else (1.7, inf, b'cat') is refused."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":
            raise InputError(f"{source}: labels are {values.dtype}, expected integers")
        array = values
    elif isinstance(values, (list, tuple)):
        bad = [v for v in values if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))
               or not -2 ** 62 < int(v) < 2 ** 62][:1]  # a list: a label may itself be None
        if bad:
            raise InputError(f"{source}: label {str(bad[0])[:40]!r} is not a whole number in range")
        array = np.array([int(v) for v in values], dtype=np.int64)
    else:
        raise InputError(f"{source}: expected a list of integer labels, got {type(values).__name__}")
    if array.ndim != 1:
        raise InputError(f"{source}: expected one label per image, got shape {array.shape}")
    if array.dtype.kind == "u" and len(array) and array.max() >= 2 ** 62:
        raise InputError(f"{source}: labels far out of range")
    return array.astype(np.int64)


def _image_files(root):
    """Map split -> (path, label) pairs of CIFAR-10's image-folder tree, its ten class folders checked."""
    listing = {}
    for split in ("train", "test"):
        classes = tuple(sorted(p.name for p in (root / split).iterdir() if p.is_dir() and not is_hidden(p)))
        if classes != CIFAR10_CLASSES:
            raise InputError(f"{root / split} has class folders {', '.join(classes) or '(none)'}; CIFAR-10's tree "
                             f"needs exactly {', '.join(CIFAR10_CLASSES)}")
        files = [
            (path, label)
            for label, name in enumerate(classes)
            for path in sorted((root / split / name).iterdir())
            if is_image_file(path)
        ]
        if not files:
            raise InputError(f"{root / split} holds no images; {EXPECTED_LAYOUT}")
        listing[split] = files
    return listing


def _read_image_folders_cached(root, verbose=0):
    """Decode an image-folder tree once, then reuse the arrays cached under ``cache.cache_dir()``."""
    listing = _image_files(root)
    key = hashlib.sha256(str(root.resolve()).encode())
    for split, files in listing.items():
        for path, label in files:
            stat = path.stat()
            key.update(f"{split}/{label}/{path.name}/{stat.st_size}/{stat.st_mtime_ns}\n".encode())
    name = f"cifar10-{key.hexdigest()[:20]}.npz"
    arrays = cache.load(name)
    if arrays is not None and set(arrays) == {"x_train", "y_train", "x_test", "y_test"}:
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    (x_train, y_train), (x_test, y_test) = (_decode_images(files, verbose, f"decoding {split}")
                                            for split, files in listing.items())
    cache.save(name, dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test),
               about=f"CIFAR-10 images decoded from {root.resolve()}")
    return (x_train, y_train), (x_test, y_test)


def _decode_images(files, verbose=0, what="decoding images"):
    """Decode (path, label) pairs into checked uint8 images and int64 labels.

    The size and mode are read from the header before any pixel is decoded,
    so a decompression bomb is refused unopened.
    """
    progress = StepProgress(what, len(files), verbose)
    x = np.empty((len(files), *IMAGE_SHAPE), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size check refuses such an image
        for i, (path, _) in enumerate(files):
            try:
                with Image.open(path) as im:
                    if im.size != IMAGE_SHAPE[1::-1] or im.mode != "RGB":
                        raise InputError(f"{path}: image is {im.size[0]}x{im.size[1]} {im.mode}, expected 32x32 RGB")
                    x[i] = np.asarray(im)
            except InputError:
                raise
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                raise InputError(f"{path}: cannot decode image ({' '.join(str(e).split())[:200]})") from None
            if (i + 1) % 1000 == 0 or i + 1 == len(files):
                progress.update(i + 1)
    return x, np.array([label for _, label in files], dtype=np.int64)


def _checked(x, y, source, num_classes=10):
    """Check image shape and label range, returning ``(x, y)``."""
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise InputError(f"{source}: images of shape {x.shape[1:]}, expected {IMAGE_SHAPE}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise InputError(f"{source}: labels out of range 0..{num_classes - 1} (found {y.min()}..{y.max()})")
    return x, y


@dataclasses.dataclass
class CarTruckCat:
    """The car/truck/cat benchmark: observed (noisy) and true labels, with CIFAR indices."""

    x_train: np.ndarray
    y_train: np.ndarray
    y_train_true: np.ndarray | None
    idx_train: np.ndarray
    x_dev: np.ndarray
    y_dev: np.ndarray
    y_dev_true: np.ndarray | None
    idx_dev: np.ndarray
    class_names: tuple = BENCHMARK_CLASSES
    paths_train: tuple | None = None  # your own folders: each image's path relative to the dataset's root
    paths_dev: tuple | None = None

    def save(self, path):
        """Save as .npz (no pickles); true labels are left out when unknown."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        arrays["class_names"] = np.array(self.class_names)
        save_arrays(path, **{k: v for k, v in arrays.items() if v is not None})

    @classmethod
    def load(cls, path):
        """Load a benchmark saved with :meth:`save`."""
        arrays = load_arrays(path)
        try:
            fields = {f.name: arrays.get(f.name) for f in dataclasses.fields(cls)}
            fields["class_names"] = tuple(str(c) for c in arrays["class_names"])
            for name in ("paths_train", "paths_dev"):
                if fields[name] is not None:
                    fields[name] = tuple(str(p) for p in fields[name])
            return cls(**fields)
        except KeyError as e:
            raise InputError(f"{path}: not a saved benchmark (missing {e})") from None


def car_truck_cat(
    data_dir=None,
    seed=0,
    *,
    cifar=None,
    train_counts=TRAIN_COUNTS,
    dev_counts=DEV_COUNTS,
    cat_to_car=0.676,
):
    """Build the car/truck/cat benchmark from CIFAR-10, deterministically for ``seed``.

    Train comes from CIFAR train, dev from CIFAR test; ``*_counts`` are the true
    car/truck/cat counts, and ``round(cat_to_car * cats)`` cats of each split are
    labelled car. ``cifar`` takes ``load_cifar10()``'s output instead of ``data_dir``.
    """
    if not 0.0 <= cat_to_car <= 1.0:
        raise InputError(f"cat_to_car must lie in [0, 1], got {cat_to_car}")
    (x_tr, y_tr), (x_te, y_te) = cifar if cifar is not None else load_cifar10(data_dir)
    train = _draw_split(x_tr, y_tr, train_counts, cat_to_car, np.random.default_rng([seed, 0]), "train")
    dev = _draw_split(x_te, y_te, dev_counts, cat_to_car, np.random.default_rng([seed, 1]), "test")
    return CarTruckCat(*train, *dev)


def _draw_split(x, y, counts, cat_to_car, rng, split):
    """Draw one split: images, observed labels, true labels, CIFAR indices (:func:`keras_apml.noise.draw`)."""
    for cifar_label, count in zip(BENCHMARK_FROM_CIFAR, counts):
        available = int(np.sum(y == cifar_label))
        if count > available:
            raise InputError(f"CIFAR-10 {split} has {available} {CIFAR10_CLASSES[cifar_label]} images, "
                             f"the benchmark asks for {count}")
    idx, y_true, y_observed = noise.draw(y, list(zip(BENCHMARK_FROM_CIFAR, counts)), rng,
                                         pairs=[(2, 0, cat_to_car)], split=f"CIFAR-10 {split}")
    return x[idx], y_observed, y_true, idx


def load_course_pickle(path, num_classes=3):
    """Read the course's pickle (a list of (image, label), images CHW in [-1, 1]) as uint8 NHWC and labels."""
    pairs = load_pickle(path)
    if not isinstance(pairs, (list, tuple)) or not pairs or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise InputError(f"{path}: expected a non-empty list of (image, label) pairs")
    images = [np.asarray(image) for image, _ in pairs]
    if any(image.dtype.kind not in "biuf" or image.shape != (3, 32, 32) for image in images):
        bad = next(image for image in images if image.dtype.kind not in "biuf" or image.shape != (3, 32, 32))
        raise InputError(f"{path}: an image of shape {bad.shape} ({bad.dtype}), expected (3, 32, 32) channels-first "
                         "numbers")
    images = np.stack(images).astype(np.float32)
    if not np.isfinite(images).all():
        raise InputError(f"{path}: {int(np.sum(~np.isfinite(images)))} pixel values are NaN or infinite")
    if images.min() < -1.001 or images.max() > 1.001:
        raise InputError(f"{path}: pixel values span {images.min():.3g}..{images.max():.3g}, expected [-1, 1]")
    labels = [label.item() if isinstance(label, np.ndarray) and label.shape == () else label for _, label in pairs]
    labels = integer_labels(labels, f"{path}: labels")
    x = np.rint((images.transpose(0, 2, 3, 1) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    return _checked(x, labels, str(path), num_classes)


def course_benchmark(train_pickle, dev_pickle):
    """The benchmark from the course's own pickles: observed labels only."""
    x_train, y_train = load_course_pickle(train_pickle)
    x_dev, y_dev = load_course_pickle(dev_pickle)
    return CarTruckCat(
        x_train, y_train, None, np.arange(len(y_train)), x_dev, y_dev, None, np.arange(len(y_dev))
    )


def load_benchmark(data_dir=None, seed=0, train_pickle=None, dev_pickle=None, quick=False, verbose=0):
    """The benchmark drawn from CIFAR-10, or the course's own pickles (observed labels only).

    ``quick`` divides the class counts by QUICK_SCALE (at least 2 per class);
    ``verbose`` shows the progress of decoding CIFAR-10's image folders.
    """
    if (train_pickle is None) != (dev_pickle is None):
        raise InputError("--train-pickle and --dev-pickle go together: give both or neither")
    if train_pickle is not None:
        return course_benchmark(train_pickle, dev_pickle)
    counts = {}
    if quick:
        counts = {name: tuple(max(2, round(c / QUICK_SCALE)) for c in default)
                  for name, default in (("train_counts", TRAIN_COUNTS), ("dev_counts", DEV_COUNTS))}
    return car_truck_cat(seed=seed, cifar=load_cifar10(data_dir, verbose), **counts)


def read_csv(path, what, header):
    """``(text, rows)`` of a UTF-8 CSV file: blank and ``#`` rows left out, a first row equal to ``header`` too;
    a file that cannot be read or decoded is one InputError naming it as ``what``."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {e.start})") from None
    rows = [row for row in csv.reader(text.splitlines()) if row and not row[0].startswith("#")]
    if rows and tuple(c.strip().lower() for c in rows[0][:len(header)]) == tuple(header):
        rows = rows[1:]
    return text, rows


def apply_relabel_file(y, path, class_names, paths=None):
    """Apply a CSV relabel file to labels ``y``; return the new labels and a record.

    Its rows are ``index,label`` (the benchmark's and CIFAR-10's training
    images) or, for images that have ``paths`` (your own folders), ``path,label``
    with the path relative to the dataset's root, as the studies write them.
    """
    path = Path(path)
    key = "index" if paths is None else "path"
    text, rows = read_csv(path, "relabel file", (key, "label"))
    where = None if paths is None else {p: i for i, p in enumerate(paths)}
    y_new = np.array(y, copy=True)
    seen = {}
    for line, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise InputError(f"{path}: row {line} should be '{key},label'")
        item, label = row[0].strip(), row[1].strip()
        if where is not None:
            if item not in where:
                raise InputError(f"{path}: row {line}: {item[:200]!r} is not one of the training images' paths")
            index = where[item]
        elif not _is_number(item) or int(item) >= len(y_new):
            raise InputError(f"{path}: row {line}: index {item[:40]!r} is not in 0..{len(y_new) - 1}")
        else:
            index = int(item)
        if index in seen:
            raise InputError(f"{path}: rows {seen[index]} and {line} both relabel {key} {item[:200]}")
        seen[index] = line
        if label in class_names:
            label = class_names.index(label)
        elif _is_number(label) and int(label) < len(class_names):
            label = int(label)
        else:
            raise InputError(f"{path}: row {line}: label {label[:40]!r} is not one of {list(class_names)}")
        y_new[index] = label
    record = {
        "relabel_file": str(path.resolve()),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "rows": len(rows),
        "labels_changed": int(np.sum(y_new != np.asarray(y))),
    }
    return y_new, record


def _is_number(text):
    """Whether ``text`` is a plain decimal integer (ASCII digits only: not '²' or '٣')."""
    return text.isascii() and text.isdigit() and len(text) < 19


def write_relabel_file(path, indices, labels, class_names, paths=None):
    """Write a CSV relabel file that apply_relabel_file reads: ``index,label`` with class names, or
    ``path,label`` naming each image by its path (your own folders: a file a person can open)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index" if paths is None else "path", "label"])
        writer.writerows((int(i) if paths is None else paths[int(i)], class_names[int(label)])
                         for i, label in zip(indices, labels))


def select_classes(x, y, names, class_names):
    """Only the images of the classes called ``names``, relabelled 0.. in ``class_names`` order; returns x, y, names."""
    unknown = [n for n in names if n not in class_names]
    if unknown or not names or len(set(names)) != len(names):
        raise InputError(f"classes {list(names)}: expected distinct names from {list(class_names)}")
    kept = [c for c in class_names if c in names]
    old_labels = np.array([class_names.index(c) for c in kept])
    keep = np.isin(y, old_labels)
    return x[keep], np.searchsorted(old_labels, y[keep]).astype(y.dtype), tuple(kept)


def validation_split(y, size=0.2, seed=0):
    """Stratified ``(train_indices, validation_indices)``; ``size`` is a fraction of ``y`` or a count."""
    try:
        return train_test_split(np.arange(len(y)), test_size=size, random_state=seed, stratify=y)
    except ValueError as e:  # a class too small to stratify, or a split too small to hold every class
        raise InputError(f"cannot split {len(y)} images {1 - size if size < 1 else len(y) - size:g} / {size:g} "
                         f"stratified: {' '.join(str(e).split())[:200]}") from None


def stratified_indices(y, n, seed=0):
    """The indices of a stratified random subset of at most ``n`` of the labels ``y`` (all of them when fewer)."""
    if n >= len(y):
        return np.arange(len(y))
    return train_test_split(np.arange(len(y)), train_size=n, random_state=seed, stratify=y)[0]


def stratified_subset(x, y, n, seed=0):
    """A stratified random subset of at most ``n`` images (for --quick runs)."""
    if n >= len(y):
        return x, y
    idx = stratified_indices(y, n, seed)
    return x[idx], y[idx]


def quick_benchmark(bench, n_train, n_dev, seed=0):
    """A stratified subset (by observed label) of at most ``n_train`` and ``n_dev`` images, for --quick runs."""
    t = np.sort(stratified_indices(bench.y_train, n_train, seed))
    d = np.sort(stratified_indices(bench.y_dev, n_dev, seed))

    def some(a, i):
        return None if a is None else tuple(a[k] for k in i) if isinstance(a, tuple) else a[i]

    return CarTruckCat(bench.x_train[t], bench.y_train[t], some(bench.y_train_true, t), bench.idx_train[t],
                       bench.x_dev[d], bench.y_dev[d], some(bench.y_dev_true, d), bench.idx_dev[d],
                       class_names=bench.class_names, paths_train=some(bench.paths_train, t),
                       paths_dev=some(bench.paths_dev, d))


def save_arrays(path, **arrays):
    """Save named arrays to an .npz file atomically, without pickles."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    if any(a.dtype == object for a in arrays.values()):
        raise ValueError("object arrays would need pickle; save plain numeric or string arrays")
    with atomic_path(Path(path).with_suffix(".npz")) as tmp:
        np.savez(tmp, **arrays)


def load_arrays(path):
    """Load every array of an .npz file with ``allow_pickle=False``."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:  # truncated: BadZipFile
        raise InputError(f"{path}: corrupt or unsafe .npz ({type(e).__name__}: {e})") from None
