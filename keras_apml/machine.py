"""What a run ran on: library versions and the device, for config.json and the benchmarks."""

import importlib.metadata as md
import platform


def library_versions():
    """Versions of Python and the libraries a run depends on."""
    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "scikit-learn", "imbalanced-learn", "matplotlib", "cleanlab"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def device_description():
    """The accelerators TensorFlow sees, or the CPU."""
    from keras_apml import backend  # noqa: F401 - here, not at the top: config.json's versions come without
    import tensorflow as tf  # TensorFlow

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "gpus": [gpu.name for gpu in gpus],
        "device": "GPU" if gpus else "CPU",
    }
