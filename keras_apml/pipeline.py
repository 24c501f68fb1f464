"""The tf.data input pipeline and the imbalance tools that feed it.

Images enter as uint8 arrays and leave as float32 batches in [0, 1]; every
model carries its own preprocessing after that.
"""

import math

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import numpy as np
import tensorflow as tf
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.utils.class_weight import compute_class_weight

from keras_apml.errors import InputError
from keras_apml.folders import FileImages, decode
from keras_apml.recipe import BALANCE, RESAMPLERS

AUTOTUNE = tf.data.AUTOTUNE


def _to_unit_float(images):
    """Cast uint8 images to float32 in [0, 1] (works on tensors and arrays)."""
    return tf.cast(images, tf.float32) / 255.0


def _slices(x, y=None):
    """``(dataset of images or of image files, labelled)``: arrays as they are, :class:`FileImages` as paths."""
    items = x.files() if isinstance(x, FileImages) else x
    return tf.data.Dataset.from_tensor_slices(items if y is None else (items, y))


def _decoded(ds, x):
    """``ds`` with :class:`FileImages` paths decoded (in parallel, as the array path decodes them: same pixels)."""
    if not isinstance(x, FileImages):
        return ds
    size = x.size

    def load(path, *label):
        image = tf.numpy_function(lambda p: decode(p.decode(), size), [path], tf.uint8, stateful=False)
        image.set_shape((*size, 3))
        return (image, *label) if label else image

    return ds.map(load, num_parallel_calls=AUTOTUNE)


def make_dataset(x, y=None, batch_size=32, shuffle=False, seed=None, augmentation=None, drop_remainder=False):
    """Turn arrays into a batched, prefetched ``tf.data.Dataset``; uint8 images become float32 in [0, 1].

    Float arrays (cached features, say) pass unscaled. ``augmentation`` (an
    :class:`~keras_apml.augmentation.Augmentation`) runs on each batch inside the map. Images left in
    their files (:class:`keras_apml.folders.FileImages`) are shuffled as paths
    and decoded as they stream.
    """
    ds = _slices(x, y)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return _finish(_decoded(ds, x).batch(batch_size, drop_remainder=drop_remainder), augmentation,
                   labelled=y is not None)


def balanced_dataset(x, y, batch_size=32, seed=None, augmentation=None):
    """Oversample in tf.data: classes drawn with equal probability (Keras's WeightedRandomSampler).

    One stream per class, each shuffled and repeated, mixed by
    ``tf.data.Dataset.sample_from_datasets``. The stream is endless: it returns
    ``(dataset, steps_per_epoch)`` with an epoch of ``len(y)`` images.
    """
    classes = np.unique(y)
    streams = [
        _slices(x[y == c], y[y == c])
        .shuffle(int(np.sum(y == c)), seed=None if seed is None else seed + int(c))
        .repeat()
        for c in classes
    ]
    ds = tf.data.Dataset.sample_from_datasets(streams, weights=[1.0 / len(classes)] * len(classes), seed=seed)
    return _finish(_decoded(ds, x).batch(batch_size), augmentation, labelled=True), math.ceil(len(y) / batch_size)


def check_augmentation(x, balance, augmentation):
    """Refuse an augmentation these images or this balance cannot take: ``alternating_flip`` mirrors whole epochs
    of images held in memory."""
    if augmentation is not None and augmentation.alternating_flip and (
            balance == "oversample" or isinstance(x, FileImages)):
        raise InputError("alternating_flip mirrors whole epochs of images held in memory: not with --balance "
                         "oversample, nor with images streamed from their files")


def drops_remainder(n, batch_size, drop_remainder):
    """Whether an epoch of ``n`` images leaves out its last partial batch: asked to, and with a full batch to keep
    (fewer images than a batch train as one batch)."""
    return bool(drop_remainder) and n >= batch_size


def training_dataset(x, y, balance="none", batch_size=32, seed=None, augmentation=None, drop_remainder=False):
    """Training data for one of BALANCE: ``(dataset, steps_per_epoch or None, class_weight or None, labels)``.

    ``class_weight``: balanced loss weights; ``oversample``: balanced batches in
    tf.data (an endless stream, hence the steps, every batch full); the others
    resample offline with imbalanced-learn (see :func:`resample`).
    ``drop_remainder``: each epoch leaves out the last partial batch of its shuffled images (as airbench), where
    there is a full batch (:func:`drops_remainder`).
    """
    if balance not in BALANCE:
        raise InputError(f"unknown balance strategy {balance!r}; choose from {', '.join(BALANCE)}")
    check_augmentation(x, balance, augmentation)
    if augmentation is not None and augmentation.alternating_flip:  # mirrored at random once, then by epoch
        x = augmentation.preflip(x)
    if balance == "oversample":
        ds, steps = balanced_dataset(x, y, batch_size, seed=seed, augmentation=augmentation)
        return ds, steps, None, y
    if balance in RESAMPLERS:
        if isinstance(x, FileImages):
            raise InputError(f"--balance {balance} resamples images in memory; these are streamed from their files "
                             "(past the memory budget): use class_weight or oversample")
        x, y = resample(x, y, balance, seed=seed)
    weights = class_weights(y) if balance == "class_weight" else None
    ds = make_dataset(x, y, batch_size, shuffle=True, seed=seed, augmentation=augmentation,
                      drop_remainder=drops_remainder(len(y), batch_size, drop_remainder))
    return ds, None, weights, y


def _finish(ds, augmentation, labelled):
    """Scale to [0, 1], augment if asked, prefetch."""
    pipeline = augmentation.layers() if augmentation is not None else None

    def prepare(*batch):
        images = _to_unit_float(batch[0]) if batch[0].dtype == tf.uint8 else batch[0]
        if pipeline is not None:
            images = pipeline(images, training=True)
        return (images, *batch[1:]) if labelled else images

    # The augmentation layers draw from one stateful seed generator: parallel calls would race on it and the
    # same seed would give different runs, so augmented batches are made one at a time (still far faster
    # than training consumes them), in order.
    calls = 1 if pipeline is not None else AUTOTUNE
    return ds.map(prepare, num_parallel_calls=calls).prefetch(AUTOTUNE)


def class_weights(y):
    """Balanced class weights ``{class: n / (k * n_class)}`` from sklearn, for ``fit(class_weight=...)``."""
    classes = np.unique(y)
    weights = compute_class_weight("balanced", classes=classes, y=y)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def resample(x, y, method, seed=0):
    """Resample images (or float features) offline with imbalanced-learn; returns new ``(x, y)`` arrays.

    ``random_over``: RandomOverSampler; ``under``: RandomUnderSampler; ``smote``: SMOTE;
    ``over+under`` and ``smote+under``: grow the classes below the mean count up
    to it, then cut those above it down to it.
    """
    if method not in RESAMPLERS:
        raise InputError(f"unknown resampling method {method!r}; choose from {', '.join(RESAMPLERS)}")
    classes, counts = np.unique(y, return_counts=True)
    over, _, under = method.partition("+")
    if under:
        target = int(round(counts.mean()))
        grow = {int(c): target for c, n in zip(classes, counts) if n < target}
        cut = {int(c): target for c, n in zip(classes, counts) if n > target}
    else:
        grow = cut = "auto"
    steps = []
    if over == "under":
        steps.append(RandomUnderSampler(sampling_strategy=cut, random_state=seed))
    elif over in ("random_over", "over"):
        steps.append(RandomOverSampler(sampling_strategy=grow, random_state=seed))
    else:
        if counts.min() < 2:
            raise InputError("SMOTE needs at least 2 images in every class")
        steps.append(SMOTE(sampling_strategy=grow, k_neighbors=min(5, int(counts.min()) - 1), random_state=seed))
    if under:
        steps.append(RandomUnderSampler(sampling_strategy=cut, random_state=seed))
    flat = x.reshape(len(x), -1).astype(np.float32)
    for sampler in steps:
        if sampler.sampling_strategy:
            flat, y = sampler.fit_resample(flat, y)
    if x.dtype == np.uint8:  # SMOTE's images lie between two images: whole pixel values again
        flat = np.clip(np.rint(flat), 0, 255)
    return flat.astype(x.dtype).reshape(-1, *x.shape[1:]), np.asarray(y)
