"""CIFAR-10 from Keras's download, its pickled batches or an image-folder tree, decoded once and cached."""

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from keras_apml import cache
from keras_apml.dataset import Dataset, Split
from keras_apml.errors import InputError
from keras_apml.image_files import is_hidden, is_image_file
from keras_apml.progress import StepProgress
from keras_apml.safe_pickle import load_pickle

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SHAPE = (32, 32, 3)
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


def dataset(data_dir=None, verbose=0):
    """CIFAR-10 as a :class:`~keras_apml.dataset.Dataset` of "train" and "test" splits (see :func:`load_cifar10`)."""
    (x_train, y_train), (x_test, y_test) = load_cifar10(data_dir, verbose)
    return Dataset({"train": Split(x_train, y_train), "test": Split(x_test, y_test)}, CIFAR10_CLASSES, "CIFAR-10")


def has_pickled_batches(data_dir):
    """Whether ``data_dir`` holds Keras's pickled CIFAR-10 batches (in it, or in its cifar-10-batches-py/)."""
    root = Path(data_dir).expanduser()
    return any((batches / "data_batch_1").is_file() for batches in (root / "cifar-10-batches-py", root))


def _download_cifar10():
    """Keras's own download path, with a clear message when there is no network."""
    from keras_apml import backend  # noqa: F401 - here, not at the top: folders and --help read this module
    import keras  # without TensorFlow

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
        out.append(checked_images(np.concatenate(xs), np.concatenate(ys), str(directory)))
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


def checked_images(x, y, source, num_classes=10):
    """Check image shape and label range, returning ``(x, y)``."""
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise InputError(f"{source}: images of shape {x.shape[1:]}, expected {IMAGE_SHAPE}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise InputError(f"{source}: labels out of range 0..{num_classes - 1} (found {y.min()}..{y.max()})")
    return x, y
