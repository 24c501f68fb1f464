"""A study's data from its flags: the car/truck/cat benchmark, CIFAR-10, your own image folders, a model's features."""

import dataclasses
import os
from pathlib import Path

import numpy as np

from experiments import _flags, _output
from keras_apml import benchmark, cache, cifar10, folders, stratified
from keras_apml.errors import InputError


def use_cache(args):
    """Read and write the cache of decoded images and model outputs unless ``--no-cache``: for the whole command,
    as the library reads it (every loader here calls this first)."""
    cache.set_enabled(not getattr(args, "no_cache", False))


def with_features(args, bench, mirror=True):
    """The benchmark with its images replaced by ``--features``'s penultimate features (``mirror``: each image's
    averaged with its mirror image's), computed once and cached;
    returns ``(bench, info)`` with the model, its file's hash, the feature size and the cache's record."""
    from keras_apml import features, models  # here, not at the top: they import TensorFlow, --help does not

    use_cache(args)

    if not Path(args.features).is_file():
        raise InputError(f"--features model {args.features} does not exist")
    model = models.load_model(args.features)
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape != tuple(bench.x_dev.shape[1:]):
        raise InputError(f"--features model {args.features} takes inputs of shape {shape}, not these "
                         f"{'x'.join(map(str, bench.x_dev.shape[1:]))} images")
    extractor = models.feature_extractor(model)
    digest = features.file_sha256(args.features)
    _output.say(args, f"features: layer {extractor.layers[-1].name} of {args.features}, for every image"
                f"{' and its mirror image' if mirror else ''} (cached)")
    out, info = features.cached_outputs(
        extractor, {"train": bench.x_train, "dev": bench.x_dev}, key=f"{digest}:penultimate",
        about=f"penultimate features of {Path(args.features).name} ({digest[:12]}){', mirror-averaged' * mirror}, "
              f"on {len(bench.y_train)} train and {len(bench.y_dev)} dev images", verbose=_output.verbosity(args),
        mirror=mirror)
    info.update(model=str(Path(args.features).resolve()), sha256=digest, size=int(out["train"].shape[1]),
                mirror_averaged=mirror)
    return dataclasses.replace(bench, x_train=out["train"].astype(np.float32),
                               x_dev=out["dev"].astype(np.float32)), info


def load_benchmark(args, draw=0, streams=False):
    """The study's data: the car/truck/cat benchmark (the studies all draw 0, so all see the same images), the
    course's pickles, or your own image folders (train, and test as "dev"; ``streams``: past --memory-budget,
    left in their files)."""
    use_cache(args)
    if data_kind(args) == "folder":
        found, truth = load_folder(args, val_fraction=0.0, seed=draw, streams=streams)
        (x, y, paths), (x_dev, y_dev, dev_paths) = train_and_test(found, args.data_dir)
        y_true = None if truth is None else folders_true(truth, paths, args)
        y_dev_true = None if truth is None else folders_true(truth, dev_paths, args)
        bench = benchmark.CarTruckCat(x, y, y_true, np.arange(len(y)), x_dev, y_dev, y_dev_true, np.arange(len(y_dev)),
                                      class_names=found.class_names, paths_train=tuple(paths),
                                      paths_dev=tuple(dev_paths))
        return benchmark.quick_benchmark(bench, _flags.QUICK_TRAIN, _flags.QUICK_TEST, draw) if args.quick else bench
    if any(_flags.given_folder_flags(args)):
        raise InputError(f"{', '.join(_flags.given_folder_flags(args))} concern your own image folders; --data-dir "
                         f"{args.data_dir or '(none)'} is not such a tree")
    return benchmark.load_benchmark(args.data_dir, draw, args.train_pickle, args.dev_pickle, quick=args.quick,
                                    verbose=_output.verbosity(args))


def train_and_test(found, root):
    """``(x, y, paths)`` of a folder tree's training images (a val/ folder's joined to train/'s) and of its test
    images, for a study that scores on test images."""
    if "test" not in found.splits:
        raise InputError(f"{root} has no test split: add test/<class>/ folders, or use a tree of class folders "
                         "(split by --test-fraction)")
    train = [found.splits[s] for s in ("train", "val") if s in found.splits]
    if found.streamed and len(train) > 1:
        raise InputError("streamed images of train/ and val/ cannot be joined here: raise --memory-budget")
    x, y = (train[0][0], train[0][1]) if len(train) == 1 else (
        np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]))
    return (x, y, [p for t in train for p in t[2]]), found.splits["test"]


def load_folder(args, val_fraction, seed, streams=False):
    """Your own image folders (``folders.load`` with the flags, split with ``seed``) and the truth file's
    mapping, or None; ``streams``: a study that can stream images past --memory-budget from their files."""
    use_cache(args)
    root = args.data_dir or os.environ.get(cifar10.DATA_ENV)
    if not root:
        raise InputError("your own image folders need --data-dir ROOT")
    budget = None
    if not streams and getattr(args, "memory_budget", None) is not None:
        raise InputError("--memory-budget: this study holds its images in memory; train, feature_extraction and "
                         "label_noise stream theirs")
    if streams:
        budget = args.memory_budget * 1e6 if args.memory_budget else os.sysconf("SC_PAGE_SIZE") * os.sysconf(
            "SC_PHYS_PAGES") / 4
    found = folders.load(root, args.image_size, val_fraction=val_fraction, test_fraction=args.test_fraction,
                         seed=seed, skip_unreadable=args.skip_unreadable, verbose=_output.verbosity(args),
                         memory_budget=budget)
    if found.streamed:
        _output.say(args, f"the images would take more than {budget / 1e6:.0f} MB decoded: streaming them from "
                          "their files")
    truth = folders.read_truth(args.true_labels, found.class_names) if args.true_labels else None
    if found.skipped:
        _output.say(args, f"note: {len(found.skipped)} unreadable file(s) left out (--skip-unreadable), e.g. "
                    f"{found.skipped[0][0]} ({found.skipped[0][1]})")
    return found, truth


def folders_true(truth, paths, args):
    """The true labels of ``paths`` from the truth file."""
    return folders.true_labels(truth, paths, args.true_labels)


def load_cifar10(args):
    """CIFAR-10 from --data-dir (or Keras's download): ``(x_train, y_train), (x_test, y_test)``."""
    use_cache(args)
    return cifar10.load_cifar10(args.data_dir, verbose=_output.verbosity(args))


def data_kind(args):
    """"folder" when --data-dir (or $KERAS_APML_DATA) is a tree of folders other than CIFAR-10's, else
    "benchmark" (drawn from CIFAR-10)."""
    where = args.data_dir or os.environ.get(cifar10.DATA_ENV)
    root = Path(where).expanduser() if where else None
    if getattr(args, "train_pickle", None) or root is None or not root.is_dir() or cifar10.is_cifar10(root):
        return "benchmark"
    return "folder" if any(p.is_dir() for p in root.iterdir()) else "benchmark"  # no subfolders: neither


def quick_subset(args, x, y, n):
    """``(x, y)``, or under --quick a stratified subset of ``n`` of them."""
    return stratified.stratified_subset(x, y, n, args.seed) if args.quick else (x, y)
