"""Data: CIFAR-10 (download, pickled batches or an image-folder tree), the
car/truck/cat benchmark built from it, the course's pickle format, relabel
files, and .npz datasets."""

import csv
import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from keras_apml.atomic import atomic_path
from keras_apml.errors import InputError
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
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
DATA_ENV = "KERAS_APML_DATA"
CACHE_ENV = "KERAS_APML_CACHE"
EXPECTED_LAYOUT = (
    "expected Keras's pickled batches (cifar-10-batches-py/data_batch_1..5, test_batch) "
    "or an image-folder tree train/<class>/*.jpg and test/<class>/*.jpg"
)


def load_cifar10(data_dir=None):
    """Return CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``: uint8 NHWC images, int64 labels."""
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
        return _read_image_folders_cached(root)
    raise InputError(f"data directory {root} holds no CIFAR-10 data; {EXPECTED_LAYOUT}")


def _download_cifar10():
    """Keras's own download path, with a clear message when there is no network."""
    import keras

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
            batch = load_pickle(directory / name, encoding="bytes")
            try:
                data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
            except (KeyError, TypeError, IndexError):
                raise InputError(f"{directory / name}: not a CIFAR-10 batch (no b'data'/b'labels')") from None
            if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
                raise InputError(f"{directory / name}: images of shape {data.shape[1:]}, expected 3072 values each")
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(labels)
        out.append(_checked(np.concatenate(xs).astype(np.uint8), np.concatenate(ys), str(directory)))
    return tuple(out)


def cache_dir():
    """The directory for cached decoded arrays: $KERAS_APML_CACHE or the user's cache dir."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras_apml"


def _image_files(root):
    """Map split -> sorted class names and (path, label) pairs of an image-folder tree."""
    listing = {}
    for split in ("train", "test"):
        classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        files = [
            (path, label)
            for label, name in enumerate(classes)
            for path in sorted((root / split / name).iterdir())
            if path.suffix.lower() in IMAGE_EXTENSIONS
        ]
        if not files:
            raise InputError(f"{root / split} holds no images; {EXPECTED_LAYOUT}")
        listing[split] = (classes, files)
    if listing["train"][0] != listing["test"][0]:
        raise InputError(f"{root}: train and test have different class folders")
    return listing


def _read_image_folders_cached(root):
    """Decode an image-folder tree once, then reuse the .npz cached under cache_dir()."""
    listing = _image_files(root)
    key = hashlib.sha256(str(root.resolve()).encode())
    for split, (_, files) in listing.items():
        for path, label in files:
            stat = path.stat()
            key.update(f"{split}/{label}/{path.name}/{stat.st_size}/{stat.st_mtime_ns}\n".encode())
    cache_file = cache_dir() / f"cifar10-{key.hexdigest()[:20]}.npz"
    if cache_file.is_file():
        try:
            arrays = load_arrays(cache_file)
            return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
        except (InputError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    (x_train, y_train), (x_test, y_test) = (_decode_images(files) for _, files in listing.values())
    save_arrays(cache_file, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return (x_train, y_train), (x_test, y_test)


def _decode_images(files):
    """Decode (path, label) pairs into checked uint8 images and int64 labels."""
    from PIL import Image, UnidentifiedImageError

    x = np.empty((len(files), *IMAGE_SHAPE), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as im:
                image = np.asarray(im)
        except (OSError, UnidentifiedImageError) as e:
            raise InputError(f"{path}: cannot decode image ({e})") from None
        channels = image.shape[2] if image.ndim == 3 else 1
        if image.shape[:2] != IMAGE_SHAPE[:2] or channels != IMAGE_SHAPE[2]:
            raise InputError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]} with {channels} channel(s), "
                f"expected 32x32 RGB"
            )
        x[i] = image
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
    """Draw one split: images, observed labels, true labels, CIFAR indices."""
    picked = []
    for label, (cifar_label, count) in enumerate(zip(BENCHMARK_FROM_CIFAR, counts)):
        pool = np.flatnonzero(y == cifar_label)
        if count > len(pool):
            raise InputError(
                f"CIFAR-10 {split} has {len(pool)} {CIFAR10_CLASSES[cifar_label]} images, "
                f"the benchmark asks for {count}"
            )
        picked.append(np.sort(rng.choice(pool, size=count, replace=False)))
    idx = np.concatenate(picked)
    y_true = np.repeat(np.arange(3), counts)
    order = rng.permutation(len(idx))
    idx, y_true = idx[order], y_true[order]
    y_observed = y_true.copy()
    cats = np.flatnonzero(y_true == 2)
    flipped = rng.choice(cats, size=int(round(cat_to_car * len(cats))), replace=False)
    y_observed[flipped] = 0
    return x[idx], y_observed, y_true, idx


def load_course_pickle(path, num_classes=3):
    """Read the course's pickle (a list of (image, label), images CHW in [-1, 1]) as uint8 NHWC and labels."""
    pairs = load_pickle(path)
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise InputError(f"{path}: expected a non-empty list of (image, label) pairs")
    try:
        images = np.stack([np.asarray(image, dtype=np.float32) for image, _ in pairs])
        labels = np.array([int(np.asarray(label)) for _, label in pairs], dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: expected (image, label) pairs of equal-shaped images ({e})") from None
    if images.shape[1:] != (3, 32, 32):
        raise InputError(f"{path}: images of shape {images.shape[1:]}, expected (3, 32, 32) channels-first")
    if images.min() < -1.001 or images.max() > 1.001:
        raise InputError(f"{path}: pixel values span {images.min():.3g}..{images.max():.3g}, expected [-1, 1]")
    x = np.clip(np.rint((images.transpose(0, 2, 3, 1) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return _checked(x, labels, str(path), num_classes)


def course_benchmark(train_pickle, dev_pickle):
    """The benchmark from the course's own pickles: observed labels only."""
    x_train, y_train = load_course_pickle(train_pickle)
    x_dev, y_dev = load_course_pickle(dev_pickle)
    return CarTruckCat(
        x_train, y_train, None, np.arange(len(y_train)), x_dev, y_dev, None, np.arange(len(y_dev))
    )


def load_benchmark(data_dir=None, seed=0, train_pickle=None, dev_pickle=None, quick=False):
    """The benchmark drawn from CIFAR-10, or the course's own pickles (observed labels only).

    ``quick`` divides the class counts by QUICK_SCALE (at least 2 per class).
    """
    if (train_pickle is None) != (dev_pickle is None):
        raise InputError("--train-pickle and --dev-pickle go together: give both or neither")
    if train_pickle is not None:
        return course_benchmark(train_pickle, dev_pickle)
    counts = {}
    if quick:
        counts = {name: tuple(max(2, round(c / QUICK_SCALE)) for c in default)
                  for name, default in (("train_counts", TRAIN_COUNTS), ("dev_counts", DEV_COUNTS))}
    return car_truck_cat(data_dir, seed=seed, **counts)


def apply_relabel_file(y, path, class_names):
    """Apply a CSV ``index,label`` relabel file to labels ``y``; return the new labels and a record."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read relabel file {path}: {e.strerror}") from None
    rows = [row for row in csv.reader(text.splitlines()) if row and not row[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["index", "label"]:
        rows = rows[1:]
    y_new = np.array(y, copy=True)
    for line, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise InputError(f"{path}: row {line} should be 'index,label'")
        index, label = row[0].strip(), row[1].strip()
        if not index.isdigit() or int(index) >= len(y_new):
            raise InputError(f"{path}: row {line}: index {index!r} is not in 0..{len(y_new) - 1}")
        if label in class_names:
            label = class_names.index(label)
        elif label.isdigit() and int(label) < len(class_names):
            label = int(label)
        else:
            raise InputError(f"{path}: row {line}: label {label!r} is not one of {list(class_names)}")
        y_new[int(index)] = label
    record = {
        "relabel_file": str(path.resolve()),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "rows": len(rows),
        "labels_changed": int(np.sum(y_new != np.asarray(y))),
    }
    return y_new, record


def write_relabel_file(path, indices, labels, class_names):
    """Write a CSV relabel file (``index,label`` with class names) that apply_relabel_file reads."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label"])
        writer.writerows((int(i), class_names[int(label)]) for i, label in zip(indices, labels))


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
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=size, random_state=seed, stratify=y)


def stratified_subset(x, y, n, seed=0):
    """A stratified random subset of at most ``n`` images (for --quick runs)."""
    from sklearn.model_selection import train_test_split

    if n >= len(y):
        return x, y
    idx, _ = train_test_split(np.arange(len(y)), train_size=n, random_state=seed, stratify=y)
    return x[idx], y[idx]


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
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: corrupt or unsafe .npz ({e})") from None
