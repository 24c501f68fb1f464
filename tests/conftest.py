"""Shared fixtures: small synthetic stand-ins for CIFAR-10, on disk and in memory."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Nothing a test does touches the user's home: HOME, and the caches and configuration kept under it, point into a
# directory of this process's own, set before anything reads them (Keras, matplotlib, Chromium, a fixture of module
# or session scope, a command run as a subprocess); .ci/run checks that the real one is left as it was.
_HOME = tempfile.mkdtemp(prefix="keras_apml-tests-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
for _name in ("KERAS_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR"):
    os.environ.pop(_name, None)
os.environ.update(HOME=_HOME, KERAS_APML_CACHE=os.path.join(_HOME, "keras_apml-cache"))

import importlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_apml.cifar10 import CIFAR10_CLASSES  # noqa: E402
from keras_apml.recipe import Recipe  # noqa: E402

# A real CIFAR-10 directory for the smoke test, read before the fixtures below hide it.
REAL_DATA = os.environ.get("KERAS_APML_DATA")


def synthetic_images(n, seed=0, labels=None):
    """Random uint8 CIFAR-shaped images whose mean colour depends on the label, so they are learnable."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    if labels is not None:
        tint = (np.asarray(labels)[:, None, None, None] * 25) % 256
        x = ((x.astype(np.int32) // 2 + tint) % 256).astype(np.uint8)
    return x


def write_image_tree(root, per_class_train, per_class_test, seed=0, classes=CIFAR10_CLASSES):
    """Write train/<class>/*.png and test/<class>/*.png; PNG keeps the pixels exact."""
    from PIL import Image

    arrays = {}
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        labels = np.repeat(np.arange(len(classes)), n)
        x = synthetic_images(len(labels), seed=seed + (split == "test"), labels=labels)
        for i, (image, label) in enumerate(zip(x, labels)):
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:05d}.png")
        arrays[split] = (x, labels)
    return arrays


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own decoded-array cache, switched on, and no default data directory."""
    from keras_apml import cache

    monkeypatch.setenv("KERAS_APML_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_enabled", True)
    monkeypatch.delenv("KERAS_APML_DATA", raising=False)


TINY = Recipe(model="small_cnn", epochs=1, batch_size=16)  # one epoch of the smallest net: a training in seconds


@pytest.fixture(scope="session")
def skewed():
    """120 / 20 / 10 images of three learnable classes."""
    y = np.repeat(np.arange(3), (120, 20, 10))
    return synthetic_images(len(y), seed=1, labels=y), y


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory):
    """A CIFAR-like image-folder tree big enough for the benchmark's --quick counts."""
    root = tmp_path_factory.mktemp("cifar_tree")
    arrays = write_image_tree(root, per_class_train=240, per_class_test=30)
    return root, arrays


@pytest.fixture(scope="session")
def cifar_arrays():
    """In-memory CIFAR-shaped arrays with CIFAR's class sizes (5,000 / 1,000 per class); pixels are cheap views."""
    y_train, y_test = np.repeat(np.arange(10), 5000), np.repeat(np.arange(10), 1000)
    # Image i holds the value i % 251 everywhere, so a drawn image can be traced to its index.
    x_train = np.broadcast_to((np.arange(50000) % 251).astype(np.uint8)[:, None, None, None], (50000, 32, 32, 3))
    x_test = np.broadcast_to((np.arange(10000) % 251).astype(np.uint8)[:, None, None, None], (10000, 32, 32, 3))
    return (x_train, y_train), (x_test, y_test)


@pytest.fixture(scope="session")
def transfer_model_file(tmp_path_factory):
    """An untrained vgg19_transfer model saved as .keras (ImageNet weights are unreachable here)."""
    from keras_apml import models

    path = tmp_path_factory.mktemp("transfer") / "vgg19.keras"
    models.vgg19_transfer(weights=None).save(path)
    return path


@pytest.fixture(scope="session")
def benchmark_model_file(tmp_path_factory):
    """An untrained three-class small_cnn saved as .keras (a stand-in for a car/truck/cat model)."""
    from keras_apml import models

    path = tmp_path_factory.mktemp("benchmark_model") / "small_cnn.keras"
    models.small_cnn(num_classes=3).save(path)
    return path


# ImageNet weights cannot be downloaded here: experiments that use VGG19 build it untrained.
# The image tree's classes are named as CIFAR-10's: the studies take it for your own folders unless told to draw the
# benchmark from it (--data benchmark) or to read it as CIFAR-10 (--data cifar10).
BENCHMARK = ["--data", "benchmark"]
QUICK_EXTRA = {"cifar_transfer": ["--weights", "none"],
               "feature_extraction": ["--data", "cifar10", "--model", "{transfer_model}"],
               "adversarial": [*BENCHMARK, "--model", "{benchmark_model}"],
               **{name: BENCHMARK for name in ("baseline", "imbalance", "label_noise", "hyperparams", "train")}}


def run_command(name, argv):
    """Run ``python -m experiments.<name> ARGV`` in-process; return its exit status."""
    from experiments import _contract

    module = importlib.import_module(f"experiments.{name}")
    with pytest.raises(SystemExit) as e:
        _contract.run(module.main, argv)
    return e.value.code


@pytest.fixture(scope="session")
def quick_run(image_tree, transfer_model_file, benchmark_model_file, tmp_path_factory):
    """``quick_run(name)`` -> ``(exit status, run directory)`` of the experiment's default --quick run, run once.

    Once per pytest-xdist worker: tests that share a run carry ``xdist_group(name)``
    so that ``--dist loadgroup`` (pyproject.toml) sends them to the same worker.
    """
    done = {}

    def run(name):
        if name not in done:
            out = tmp_path_factory.mktemp(f"quick_{name}") / "run"
            extra = [a.format(transfer_model=transfer_model_file, benchmark_model=benchmark_model_file)
                     for a in QUICK_EXTRA.get(name, [])]
            argv = ["--data-dir", str(image_tree[0]), "--out", str(out), "--quick", "--quiet", *extra]
            done[name] = (run_command(name, argv), out)
        return done[name]

    return run
