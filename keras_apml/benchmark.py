"""The car/truck/cat benchmark: drawn from CIFAR-10 with known label noise, or read from the course's pickles."""

import numpy as np

from keras_apml import noise
from keras_apml.cifar10 import CIFAR10_CLASSES, checked_images, integer_labels, load_cifar10
from keras_apml.dataset import Dataset, Split
from keras_apml.errors import InputError
from keras_apml.safe_pickle import load_pickle

BENCHMARK_CLASSES = ("car", "truck", "cat")
# Benchmark class -> CIFAR-10 label: car=automobile, truck=truck, cat=cat.
BENCHMARK_FROM_CIFAR = (1, 9, 3)
# True car/truck/cat counts of the course data's train and dev splits.
TRAIN_COUNTS, DEV_COUNTS = (4476, 449, 700), (503, 51, 71)
QUICK_SCALE = 20  # --quick draws the benchmark with 1/20 of its images


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
    return Dataset({"train": Split(*train), "dev": Split(*dev)}, BENCHMARK_CLASSES, "car/truck/cat from CIFAR-10")


def _draw_split(x, y, counts, cat_to_car, rng, split):
    """Draw one split: images, observed labels, true labels, no paths, CIFAR indices (:func:`keras_apml.noise.draw`)."""
    for cifar_label, count in zip(BENCHMARK_FROM_CIFAR, counts):
        available = int(np.sum(y == cifar_label))
        if count > available:
            raise InputError(f"CIFAR-10 {split} has {available} {CIFAR10_CLASSES[cifar_label]} images, "
                             f"the benchmark asks for {count}")
    idx, y_true, y_observed = noise.draw(y, list(zip(BENCHMARK_FROM_CIFAR, counts)), rng,
                                         pairs=[(2, 0, cat_to_car)], split=f"CIFAR-10 {split}")
    return x[idx], y_observed, y_true, None, idx


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
    return checked_images(x, labels, str(path), num_classes)


def course_benchmark(train_pickle, dev_pickle):
    """The benchmark from the course's own pickles: observed labels only."""
    x_train, y_train = load_course_pickle(train_pickle)
    x_dev, y_dev = load_course_pickle(dev_pickle)
    return Dataset({"train": Split(x_train, y_train, index=np.arange(len(y_train))),
                    "dev": Split(x_dev, y_dev, index=np.arange(len(y_dev)))}, BENCHMARK_CLASSES,
                   f"the course's pickles {train_pickle} and {dev_pickle}")


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
