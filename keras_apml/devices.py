"""Where a model trains: a tf.distribute strategy, and mixed precision and XLA where a GPU is present."""

import sys

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
import tensorflow as tf

from keras_apml.errors import InputError
from keras_apml.recipe import DISTRIBUTE


def distribution_strategy(kind="none"):
    """A tf.distribute strategy: the default one or MirroredStrategy.

    ``mirrored`` replicates over all local GPUs, or over the logical CPU
    devices where there is no GPU; ``multiworker`` is refused while Keras 3
    cannot train under it.
    Build and compile models inside ``strategy.scope()``.
    """
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind == "multiworker":  # tests/test_training.py checks that Keras still fails, and tells when it no longer does
        raise InputError("--distribute multiworker: Keras 3 cannot train under MultiWorkerMirroredStrategy yet "
                         "(model.fit fails reducing its first batch across workers: keras-team/keras#20585); use "
                         "--distribute mirrored on one machine")
    raise InputError(f"unknown distribution {kind!r}; choose from {', '.join(DISTRIBUTE)}")


def gpu_options(mixed_precision=False, jit=False):
    """Turn on mixed_float16 and XLA where a GPU is present; return what is in effect.

    On a CPU both stay off (mixed float16 is slower there) and a note says so.
    """
    wanted = {"mixed_precision": bool(mixed_precision), "jit": bool(jit)}
    if not tf.config.list_physical_devices("GPU"):
        for flag, on in wanted.items():
            if on:
                print(f"note: --{flag.replace('_', '-')} needs a GPU; it stays off on this CPU", file=sys.stderr)
        return {"mixed_precision": False, "jit": False}
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    return wanted
