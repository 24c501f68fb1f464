"""Adversarial examples in [0, 1] pixel space: FGSM, PGD and an optimisation (Adam + L1) attack.

Every model here carries its own preprocessing, so perturbations are measured
in pixels. Each attack takes float images ``x`` in [0, 1] of shape (N, H, W, C)
and integer labels (the true ones, or the targets of a targeted attack), works
batch by batch with ``tf.GradientTape`` inside a ``tf.function`` (the same code
on CPU or GPU), leaves the model's weights alone, and returns
``(x_adv, delta)`` as NumPy arrays with ``x_adv`` clipped to [0, 1].
"""

import weakref

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
import numpy as np
import tensorflow as tf

from keras_apml import evaluation
from keras_apml.errors import InputError

_GRADIENTS = weakref.WeakKeyDictionary()


class AdversarialExamples(tuple):
    """``(x_adv, delta)``, unpacked as a pair; ``.info`` holds what the attack measured."""

    def __new__(cls, x_adv, delta, info=None):
        pair = super().__new__(cls, (x_adv, delta))
        pair.info = info or {}
        return pair


def _input_gradient(model):
    """A ``tf.function`` ``(x, y) -> d sum(cross-entropy) / dx`` for ``model``, built once per model."""
    if model not in _GRADIENTS:
        loss = keras.losses.SparseCategoricalCrossentropy(reduction="sum")

        @tf.function(reduce_retracing=True)
        def gradient(x, y):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = loss(y, model(x, training=False))
            return tape.gradient(total, x)

        _GRADIENTS[model] = gradient
    return _GRADIENTS[model]


def _check(x, y, eps=0.0):
    """Validate the images, labels and eps at the boundary; returns float32 images and int64 labels."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise InputError(f"images must have shape (N, H, W, C), got {x.shape}")
    if x.dtype == np.uint8:
        raise InputError("images must be floats in [0, 1], not uint8: divide by 255 first")
    x = x.astype(np.float32)
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise InputError(f"images must lie in [0, 1], got {x.min():.3g}..{x.max():.3g}")
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if len(y) != len(x):
        raise InputError(f"{len(x)} images but {len(y)} labels")
    if eps < 0:
        raise InputError(f"eps must be >= 0, got {eps}")
    return x, y


def fgsm(model, x, y, eps, targeted=False, batch_size=256):
    """Fast gradient sign method.

    Untargeted: ``x + eps * sign(grad)`` of the loss at ``y`` (pass
    ``evaluation.predict_labels(model, x)`` as ``y`` to avoid label leaking); targeted
    (``y`` the targets): ``x - eps * sign(grad)``.
    """
    x, y = _check(x, y, eps)
    gradient = _input_gradient(model)
    direction = -1.0 if targeted else 1.0
    x_adv = np.empty_like(x)
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        step = direction * eps * tf.sign(gradient(xb, tf.constant(y[start:start + batch_size])))
        x_adv[start:start + batch_size] = tf.clip_by_value(xb + step, 0.0, 1.0).numpy()
    return AdversarialExamples(x_adv, x_adv - x)


def pgd(model, x, y, eps, alpha=None, steps=10, targeted=False, random_start=True, seed=0, batch_size=256):
    """Projected gradient descent: ``steps`` FGSM steps of size ``alpha`` (default eps / 4), each projected
    back into the L-infinity ball of radius ``eps`` around ``x`` and into [0, 1]; optionally from a random
    point of the ball."""
    x, y = _check(x, y, eps)
    if steps < 1:
        raise InputError(f"PGD needs at least one step, got {steps}")
    alpha = eps / 4 if alpha is None else alpha
    gradient = _input_gradient(model)
    direction = -1.0 if targeted else 1.0
    rng = np.random.default_rng(seed)
    x_adv = np.empty_like(x)
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        yb = tf.constant(y[start:start + batch_size])
        lower, upper = tf.maximum(xb - eps, 0.0), tf.minimum(xb + eps, 1.0)
        adv = xb
        if random_start and eps > 0:
            adv = tf.clip_by_value(xb + rng.uniform(-eps, eps, size=xb.shape).astype(np.float32), lower, upper)
        for _ in range(steps):
            adv = tf.clip_by_value(adv + direction * alpha * tf.sign(gradient(adv, yb)), lower, upper)
        x_adv[start:start + batch_size] = adv.numpy()
    return AdversarialExamples(x_adv, x_adv - x)


def optimize_attack(model, x, target, c=0.01, learning_rate=0.01, max_steps=200, batch_size=256):
    """Targeted attack by optimisation: delta from zero, Adam on CE(model(clip(x + delta)), target) + c * |delta|_1.

    Each image stops changing once the model predicts its target. ``.info``
    holds, per image, the steps taken, success and the L1, L2 and L-infinity
    norms of delta.
    """
    x, target = _check(x, target)
    if c < 0 or max_steps < 1:
        raise InputError(f"need c >= 0 and max_steps >= 1, got c={c}, max_steps={max_steps}")
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
    x_adv = np.empty_like(x)
    steps_taken = np.zeros(len(x), dtype=np.int64)
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        tb = tf.constant(target[start:start + batch_size])
        delta = tf.Variable(tf.zeros_like(xb))
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build([delta])
        taken = np.zeros(len(xb), dtype=np.int64)
        for _ in range(max_steps):
            active = _still_wrong(model, xb, delta, tb)
            if not bool(tf.reduce_any(active)):
                break
            taken += active.numpy()
            with tf.GradientTape() as tape:
                probabilities = model(tf.clip_by_value(xb + delta, 0.0, 1.0), training=False)
                objective = loss(tb, probabilities) + c * tf.reduce_sum(tf.abs(delta))
            before = tf.identity(delta)
            optimizer.apply([tape.gradient(objective, delta)], [delta])
            delta.assign(tf.where(active[:, None, None, None], delta, before))  # finished images stay put
        x_adv[start:start + batch_size] = tf.clip_by_value(xb + delta, 0.0, 1.0).numpy()
        steps_taken[start:start + batch_size] = taken
    delta = x_adv - x
    success = evaluation.predict_labels(model, x_adv, batch_size) == target
    flat = delta.reshape(len(delta), -1)
    info = {"steps": steps_taken, "success": success, "l1": np.abs(flat).sum(axis=1),
            "l2": np.sqrt((flat ** 2).sum(axis=1)), "linf": np.abs(flat).max(axis=1, initial=0.0)}
    return AdversarialExamples(x_adv, delta, info)


def _still_wrong(model, x, delta, target):
    """Which images the model does not yet assign to their target."""
    predicted = tf.argmax(model(tf.clip_by_value(x + delta, 0.0, 1.0), training=False), axis=-1)
    return tf.not_equal(predicted, target)
