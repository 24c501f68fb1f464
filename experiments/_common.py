"""The frame every experiment runs in: its flags, the order of its work, and the error contract.

Each experiment's ``main`` goes: parse its flags (only those it honours, each
checked), load and check every input, and only then open its run directory
(:func:`open_run`), train and report, and :func:`finish`. :func:`run` turns
bad input anywhere into one ``error:`` line on stderr and exit status 2.
Nothing here imports TensorFlow, so ``--help`` answers at once.
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from keras_apml.errors import InputError  # noqa: E402
from keras_apml.progress import clock  # noqa: E402
from keras_apml.recipe import OPTIMIZERS, SCHEDULES, Recipe  # noqa: E402

CACHE_WHERE = "$KERAS_APML_CACHE, else $XDG_CACHE_HOME/keras_apml or ~/.cache/keras_apml"
# --quick: this many images of a training set and of a test set (stratified), and one epoch.
QUICK_TRAIN, QUICK_TEST = 500, 200
MAX_SEED = 2 ** 32 - 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error:`` line and exit status 2."""

    def error(self, message):
        raise InputError(f"{message} (see --help)")

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if hasattr(parsed, "lr") and base_recipe(parsed) is not None:  # the recipe flags' defaults follow it
            self.set_defaults(**recipe_defaults(base_recipe(parsed)))
            parsed = super().parse_args(args, namespace)
        if getattr(parsed, "features", None):
            for flag, value in (("--model", getattr(parsed, "model", "linear") != "linear"),
                                ("--init", getattr(parsed, "init", None))):
                if value:
                    self.error(f"{flag} concerns a network trained on the images; with --features a softmax head "
                               "trains on the features")
        if hasattr(parsed, "no_cache"):  # --no-cache holds for the whole command: the library reads it from here
            from keras_apml import cache

            cache.set_enabled(not parsed.no_cache)
        if getattr(parsed, "tensorboard", False):
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                self.error("--tensorboard writes logs with the tensorboard package, which is not installed: "
                           "pip install tensorboard (or keras_apml[tensorboard])")
        return parsed


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's default in its help, unless the help already states it or the flag is a switch."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction)):
            return text
        return text + (" (default: none)" if action.default is None else " (default: %(default)s)")


def parser(name, description):
    """A parser with the flags every experiment takes: data, run directory, --fresh, --quick, --quiet."""
    p = ArgumentParser(prog=f"python -m experiments.{name}", description=description, formatter_class=HelpFormatter,
                       allow_abbrev=False)  # --seed is not --seeds
    common = p.add_argument_group("common options")
    common.add_argument("--data-dir", default=None,
                        help="CIFAR-10 (Keras's cifar-10-batches-py, or its image-folder tree train/<class>/*, "
                             "test/<class>/* with the ten class folders), or, where a study takes them, your own "
                             "image folders ROOT/<class>/* (default: $KERAS_APML_DATA, else download CIFAR-10)")
    common.add_argument("--out", default=None,
                        help=f"the run directory itself (default: runs/{name}/<timestamp>/); the same command with "
                             "the same --out resumes an interrupted run")
    common.add_argument("--fresh", action="store_true",
                        help="start --out afresh: an earlier run there is moved aside to <out>.replaced-<time>")
    common.add_argument("--quick", action="store_true",
                        help=f"a tiny subset ({QUICK_TRAIN} training and {QUICK_TEST} test images, 1/20 of the "
                             "car/truck/cat benchmark) and one epoch: the whole study end to end in about a minute")
    common.add_argument("--quiet", action="store_true",
                        help="no progress output; errors and the run directory only")
    common.add_argument("--no-cache", action="store_true",
                        help=f"neither read nor write the cache of decoded images (about 185 MB per CIFAR-10 image "
                             f"folder) and model outputs (VGG19's: about 125 MB), kept in {CACHE_WHERE}; "
                             "python -m experiments.cache lists and clears it")
    return p


def add_seed(p, what="random seed for data draws and training"):
    """--seed."""
    p.add_argument("--seed", type=seed, default=0, help=what)


def add_features(p):
    """--features: the study on a trained model's cached features instead of images (a head, not a conv net)."""
    p.add_argument("--features", default=None, metavar="MODEL.keras",
                   help="train on this model's penultimate-layer features instead of the images: each image's "
                        "computed once (averaged with its mirror image's) and cached, a standardised softmax head "
                        "trained on them (recipe.FEATURE_HEAD; the recipe flags change it). E.g. the offline source: "
                        "experiments.train --data cifar10 --classes airplane,bird,deer,dog,frog,horse,ship "
                        "--model airbench")


def with_features(args, bench, mirror=True):
    """The benchmark with its images replaced by ``--features``'s penultimate features (``mirror``: each image's
    averaged with its mirror image's), computed once and cached;
    returns ``(bench, info)`` with the model, its file's hash, the feature size and the cache's record."""
    import dataclasses

    from keras_apml import features, models

    if not Path(args.features).is_file():
        raise InputError(f"--features model {args.features} does not exist")
    model = models.load_model(args.features)
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape != tuple(bench.x_dev.shape[1:]):
        raise InputError(f"--features model {args.features} takes inputs of shape {shape}, not these "
                         f"{'x'.join(map(str, bench.x_dev.shape[1:]))} images")
    extractor = models.feature_extractor(model)
    digest = features.file_sha256(args.features)
    say(args, f"features: layer {extractor.layers[-1].name} of {args.features}, for every image"
              f"{' and its mirror image' if mirror else ''} (cached)")
    out, info = features.cached_outputs(
        extractor, {"train": bench.x_train, "dev": bench.x_dev}, key=f"{digest}:penultimate",
        about=f"penultimate features of {Path(args.features).name} ({digest[:12]}){', mirror-averaged' * mirror}, "
              f"on {len(bench.y_train)} train and {len(bench.y_dev)} dev images", verbose=verbosity(args),
        mirror=mirror)
    info.update(model=str(Path(args.features).resolve()), sha256=digest, size=int(out["train"].shape[1]),
                mirror_averaged=mirror)
    return dataclasses.replace(bench, x_train=out["train"].astype(np.float32),
                               x_dev=out["dev"].astype(np.float32)), info


def add_cluster(p):
    """--scheduler and --local-workers: the study's independent trainings on a Dask cluster (keras_apml.cluster)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--scheduler", type=scheduler_address, default=None, metavar="HOST:PORT",
                       help="run the trainings on the Dask cluster whose scheduler is here (tcp://HOST:PORT; start "
                            "it with `dask scheduler`, and `dask worker tcp://HOST:PORT` on each machine with "
                            "this package installed) (default: one after another in this process)")
    group.add_argument("--local-workers", type=positive_int(256), default=None, metavar="N",
                       help="run the trainings on a local Dask cluster of N worker processes, the cores shared "
                            "among them (default: one after another in this process)")


def scheduler_address(text):
    """A Dask scheduler's address: [tcp://|tls://]HOST:PORT."""
    import re

    valid = re.fullmatch(r"((tcp|tls)://)?[A-Za-z0-9_.\-]+:\d{1,5}", text)
    if not valid or not 0 < int(text.rsplit(":", 1)[1]) < 65536:
        raise argparse.ArgumentTypeError(f"expected a scheduler address tcp://HOST:PORT, got {text!r}")
    return text if "://" in text else f"tcp://{text}"


def cluster_tasks(args):
    """The study's :class:`keras_apml.cluster.Tasks` (a context manager): in turn here, or on the cluster asked for,
    started by :func:`start_tasks`."""
    from keras_apml.cluster import Tasks

    return Tasks(args.scheduler, args.local_workers)


def start_tasks(args, tasks):
    """Start the study's cluster, if it asked for one, once its input is checked and before its run directory is
    opened; say where the trainings run."""
    tasks.start()
    if tasks.distributed:
        say(args, f"trainings {tasks.describe()}: a line as each one finishes")


def add_seeds(p, what):
    """--seeds: several seeds, each a training of its own."""
    p.add_argument("--seeds", type=seed_list, default=None,
                   help=f"comma-separated seeds of {what} (default: 0,1,2; --quick: 0)")


def add_training(p, epochs, batch_size):
    """--epochs and --batch-size, with their defaults stated (None: the recipe's)."""
    p.add_argument("--epochs", type=positive_int(100_000), default=None, help=f"training epochs (default: {epochs})")
    p.add_argument("--batch-size", type=positive_int(2 ** 20), default=None,
                   help=f"batch size (default: {batch_size})")


def add_benchmark(p):
    """The study's data: the benchmark drawn from CIFAR-10, the course's pickles, or your own image folders."""
    group = p.add_argument_group("car/truck/cat data")
    group.add_argument("--train-pickle", default=None,
                       help="the course's train pickle instead of the benchmark (then only observed labels exist)")
    group.add_argument("--dev-pickle", default=None, help="the course's dev pickle (with --train-pickle)")
    add_image_folder(p)


def add_tensorboard(p):
    """--tensorboard: Keras's TensorBoard logs in the run directory."""
    p.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard logs (keras.callbacks.TensorBoard) to <run directory>/tensorboard/; view "
                        "them with: tensorboard --logdir <run directory>/tensorboard (pip install tensorboard)")


def add_image_folder(p):
    """The flags of an image-folder dataset of your own (--data-dir pointing at any class-folder tree)."""
    from keras_apml.folders import TEST_FRACTION

    group = p.add_argument_group("your own image folders (--data-dir ROOT/<class>/* or ROOT/train/<class>/*)")
    group.add_argument("--image-size", type=image_size, default=None, metavar="HxW",
                       help="resize every image to this (e.g. 48 or 48x64, Lanczos, aspect not kept) (default: the "
                            "size all images share; required when they differ)")
    group.add_argument("--test-fraction", type=number(0, 1, high_open=True), default=TEST_FRACTION,
                       help="share of each class held out as the test set, for a tree without test/ (stratified; "
                            "the studies all split with seed 0, so they see the same images; train with its --seed)")
    group.add_argument("--skip-unreadable", action="store_true",
                       help="leave out files that do not decode (counted in the report) instead of stopping")
    group.add_argument("--memory-budget", type=number(0, low_open=True), default=None, metavar="MB",
                       help="past this many megabytes of decoded images, leave them in their files and stream them "
                            "through tf.data (train, feature_extraction, label_noise) (default: a quarter of this "
                            "machine's memory)")
    group.add_argument("--true-labels", default=None, metavar="CSV",
                       help="the true class of every image (path,label per row, as experiments.make_dataset writes "
                            "truth.csv): metrics against true labels too")


def image_size(text):
    """``48`` or ``48x64`` (height x width): each side 8..4096 pixels."""
    parts = text.lower().split("x")
    try:
        sides = tuple(int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 48 or 48x64, got {text!r}") from None
    if len(sides) not in (1, 2) or not all(8 <= v <= 4096 for v in sides):
        raise argparse.ArgumentTypeError(f"expected a size like 48 or 48x64 with sides in 8..4096, got {text!r}")
    return sides * 2 if len(sides) == 1 else sides


def add_recipe(p, default=Recipe(), models=("small_cnn", "cifar_convnet", "airbench"), model_help="the network"):
    """The training recipe's flags, with ``default``'s values (and --epochs, --batch-size)."""
    group = p.add_argument_group("training recipe")
    group.add_argument("--model", choices=models, default=default.model, help=model_help)
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=default.optimizer, help="the optimiser")
    group.add_argument("--lr", type=number(0, low_open=True), default=default.lr, help="learning rate")
    group.add_argument("--momentum", type=number(0, 1, high_open=True), default=None,
                       help=f"SGD momentum (default: {default.momentum:g}; only with --optimizer sgd or nesterov)")
    group.add_argument("--weight-decay", type=number(0), default=default.weight_decay,
                       help="decoupled weight decay")
    group.add_argument("--schedule", choices=SCHEDULES, default=default.schedule,
                       help="learning-rate schedule: step (x0.1 at 1/2 and 3/4 of the run), plateau, cosine, "
                            "onecycle (warm-up to the rate over 23%% of the steps, cosine down to 7%% of it)")
    group.add_argument("--label-smoothing", type=number(0, 1, high_open=True), default=default.label_smoothing,
                       help="label smoothing of the cross-entropy (0: none)")
    group.add_argument("--ema", type=number(0, 1, low_open=True, high_open=True), default=default.ema,
                       help="keep an exponential moving average of the weights with this momentum (e.g. 0.99) and "
                            "validate and save the averaged weights")
    group.add_argument("--no-standardize", action="store_true",
                       help="feed [0, 1] pixels without per-channel z-scoring")
    group.add_argument("--init", default=None, metavar="MODEL.keras",
                       help="start every model from this one's weights, all but the classifier (e.g. --model's "
                            "architecture pretrained with experiments.train --data cifar10 --classes ...)")
    add_training(p, default.epochs if default.epochs else "the recipe's", default.batch_size)


def base_recipe(args):
    """The recipe a model brings with it, which the flags given change: airbench's (``--model airbench``), the
    feature head's (``--features``); None: the study's own."""
    from keras_apml.recipe import AIRBENCH, FEATURE_HEAD

    if getattr(args, "features", None):
        return FEATURE_HEAD
    return AIRBENCH if getattr(args, "model", None) == "airbench" else None


def recipe_defaults(recipe):
    """:func:`add_recipe`'s flag defaults that give ``recipe`` (for ``parser.set_defaults``)."""
    defaults = {"model": recipe.model, "optimizer": recipe.optimizer, "lr": recipe.lr,
                "weight_decay": recipe.weight_decay, "schedule": recipe.schedule,
                "label_smoothing": recipe.label_smoothing, "ema": recipe.ema, "no_standardize": not recipe.standardize}
    return {**defaults, "augment": recipe.augment} if recipe.augment else defaults


def recipe_from_args(args, default=Recipe(), **settings):
    """The :class:`Recipe` of :func:`add_recipe`'s flags (one epoch under --quick); ``settings`` override.

    A model that brings its own recipe (:func:`base_recipe`) takes it as the default."""
    default = base_recipe(args) or default
    if args.momentum is not None and args.optimizer not in ("sgd", "nesterov"):
        raise InputError(f"--momentum is SGD's: --optimizer {args.optimizer} has none")
    return Recipe(**{
        "model": args.model, "optimizer": args.optimizer, "lr": args.lr,
        "momentum": default.momentum if args.momentum is None else args.momentum,
        "weight_decay": args.weight_decay, "schedule": args.schedule, "standardize": not args.no_standardize,
        "label_smoothing": args.label_smoothing, "ema": args.ema,
        "init": args.init, "batch_size": args.batch_size or default.batch_size,
        "epochs": args.epochs or (1 if args.quick else default.epochs), **settings})


# argparse types: bad values are refused with the reason, never coerced
def positive_int(high):
    """An integer in 1..high."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
        if value > high:
            raise argparse.ArgumentTypeError(f"expected an integer in 1..{high}, got {text}")
        return value
    parse.__name__ = "positive integer"
    return parse


def seed(text):
    """A seed: an integer in 0..2**32-1 (NumPy's and TensorFlow's range)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed lies in 0..{MAX_SEED}, got {text}")
    return value


def seed_list(text):
    """``"0,1,2"`` -> [0, 1, 2]: distinct seeds."""
    try:
        seeds = [seed(s) for s in text.split(",") if s.strip()]
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"--seeds: {e}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated seeds, got {text!r}")
    return seeds


def number(low=None, high=None, low_open=False, high_open=False):
    """A finite float in the range (NaN and infinity refused)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"expected a number {'>' if low_open else '>='} {low:g}, got {text}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"expected a number {'<' if high_open else '<='} {high:g}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


def given(p, args, names):
    """Which of the flags ``names`` (attribute names) were set to something other than their default."""
    return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) != p.get_default(n)]


def names_list(choices, flag):
    """A comma-separated list of distinct names from ``choices``."""
    def parse(text):
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, unknown))}; {flag} takes comma-separated "
                                             f"names from {', '.join(choices)}")
        if not names or len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"{flag} takes distinct comma-separated names, got {text!r}")
        return names
    parse.__name__ = "list"
    return parse


# the order of the work
def load_benchmark(args, draw=0, streams=False):
    """The study's data: the car/truck/cat benchmark (the studies all draw 0, so all see the same images), the
    course's pickles, or your own image folders (train, and test as "dev"; ``streams``: past --memory-budget,
    left in their files)."""
    from keras_apml import data

    if data_kind(args) == "folder":
        found, truth = load_folder(args, val_fraction=0.0, seed=draw, streams=streams)
        train = [found.splits[s] for s in ("train", "val") if s in found.splits]  # a val/ folder trains here
        if "test" not in found.splits:
            raise InputError(f"{args.data_dir} has train/ but no test/: a study scores on test images (or use a "
                             "tree of class folders, split by --test-fraction)")
        if found.streamed and len(train) > 1:
            raise InputError("streamed images of train/ and val/ cannot be joined here: raise --memory-budget")
        x, y = (train[0][0], train[0][1]) if len(train) == 1 else (
            np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]))
        paths = [p for t in train for p in t[2]]
        x_dev, y_dev, dev_paths = found.splits["test"]
        y_true = None if truth is None else folders_true(truth, paths, args)
        y_dev_true = None if truth is None else folders_true(truth, dev_paths, args)
        bench = data.CarTruckCat(x, y, y_true, np.arange(len(y)), x_dev, y_dev, y_dev_true, np.arange(len(y_dev)),
                                 class_names=found.class_names, paths_train=tuple(paths),
                                 paths_dev=tuple(dev_paths))
        return data.quick_benchmark(bench, QUICK_TRAIN, QUICK_TEST, draw) if args.quick else bench
    if any(_given_folder_flags(args)):
        raise InputError(f"{', '.join(_given_folder_flags(args))} concern your own image folders; --data-dir "
                         f"{args.data_dir or '(none)'} is not such a tree")
    return data.load_benchmark(args.data_dir, draw, args.train_pickle, args.dev_pickle, quick=args.quick,
                               verbose=verbosity(args))


def _given_folder_flags(args):
    """The image-folder flags set away from their defaults."""
    from keras_apml.folders import TEST_FRACTION

    defaults = {"image_size": None, "test_fraction": TEST_FRACTION, "skip_unreadable": False, "true_labels": None,
                "memory_budget": None}
    return [f"--{k.replace('_', '-')}" for k, v in defaults.items() if getattr(args, k, v) != v]


def refuse_folder_flags(p, args):
    """A usage error when image-folder flags are given but the data is not your own folders (--data ...)."""
    given_flags = _given_folder_flags(args)
    if given_flags:
        p.error(f"{', '.join(given_flags)} concern{'s' if len(given_flags) == 1 else ''} your own image folders: "
                "they need --data folder")


def load_folder(args, val_fraction, seed, streams=False):
    """Your own image folders (``folders.load`` with the flags, split with ``seed``) and the truth file's
    mapping, or None; ``streams``: a study that can stream images past --memory-budget from their files."""
    from keras_apml import data, folders

    root = args.data_dir or os.environ.get(data.DATA_ENV)
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
                         seed=seed, skip_unreadable=args.skip_unreadable, verbose=verbosity(args),
                         memory_budget=budget)
    if found.streamed:
        say(args, f"the images would take more than {budget / 1e6:.0f} MB decoded: streaming them from their files")
    truth = folders.read_truth(args.true_labels, found.class_names) if args.true_labels else None
    if found.skipped:
        say(args, f"note: {len(found.skipped)} unreadable file(s) left out (--skip-unreadable), e.g. "
                  f"{found.skipped[0][0]} ({found.skipped[0][1]})")
    return found, truth


def folders_true(truth, paths, args):
    """The true labels of ``paths`` from the truth file."""
    from keras_apml import folders

    return folders.true_labels(truth, paths, args.true_labels)


def load_cifar10(args):
    """CIFAR-10 from --data-dir (or Keras's download): ``(x_train, y_train), (x_test, y_test)``."""
    from keras_apml import data

    return data.load_cifar10(args.data_dir, verbose=verbosity(args))


def data_kind(args):
    """"folder" when --data-dir (or $KERAS_APML_DATA) is a tree of folders other than CIFAR-10's, else
    "benchmark" (drawn from CIFAR-10)."""
    from keras_apml import data

    where = args.data_dir or os.environ.get(data.DATA_ENV)
    root = Path(where).expanduser() if where else None
    if getattr(args, "train_pickle", None) or root is None or not root.is_dir() or data.is_cifar10(root):
        return "benchmark"
    return "folder" if any(p.is_dir() for p in root.iterdir()) else "benchmark"  # no subfolders: neither


def quick_subset(args, x, y, n):
    """``(x, y)``, or under --quick a stratified subset of ``n`` of them."""
    from keras_apml import data

    return data.stratified_subset(x, y, n, args.seed) if args.quick else (x, y)


def open_run(name, args, **config):
    """The run directory, opened only once every input is checked; says when it resumes an earlier call."""
    from experiments._rundir import RunDir

    run = RunDir.open(name, args.out, vars(args), fresh=args.fresh, config=config)
    if run.resumed:
        say(args, f"resuming the run in {run.path}")
    return run


def finish(run, args, line=None):
    """Mark the run finished and print where it is (with --quiet too)."""
    run.finish()
    print(f"{line + '; ' if line else ''}run directory: {run.path}", flush=True)
    return 0


class Progress:
    """The line a multi-run study prints as each of its ``total`` steps starts: its position, the time so far
    and, from the steps already trained, an estimate of the time left: ``[3/8] lr=0.01 (2:05 so far, about
    6:40 left)``. Steps kept from an earlier call take no time and do not count towards the estimate."""

    def __init__(self, total, quiet=False, clock=time.monotonic):
        self.total, self.quiet, self.clock = total, quiet, clock
        self.start = clock()
        self.index, self.trained, self.trained_seconds = 0, 0, 0.0
        self.previous = None  # (start, kept) of the step before

    def __call__(self, description, kept=False):
        now = self.clock()
        if self.previous is not None and not self.previous[1]:
            self.trained += 1
            self.trained_seconds += now - self.previous[0]
        self.previous = (now, kept)
        self.index += 1
        timing = ""
        if self.trained:
            left = self.trained_seconds / self.trained * (self.total - self.index + 1)
            timing = f" ({clock(now - self.start)} so far, about {clock(left)} left)"
        if kept:
            description += ": recorded in an earlier call, kept"
        if not self.quiet:
            print(f"[{self.index}/{self.total}] {description}{timing}", flush=True)


def verbosity(args):
    """Keras's ``verbose``: nothing with --quiet, progress bars on a terminal, else one plain line per epoch."""
    if args.quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def say(args, line):
    """One line of progress, unless --quiet."""
    if not args.quiet:
        print(line, flush=True)


def newest(patterns, makes):
    """The newest file under runs/ of the first of ``patterns`` that matches any; ``makes`` says what makes one."""
    for pattern in patterns:
        found = sorted(Path("runs").glob(pattern), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
    where = " or ".join(f"runs/{p}" for p in patterns)
    raise InputError(f"no trained model at {where}; make one with {makes}, or pass --model PATH")


# the error contract
def import_tensorflow_quietly():
    """Import TensorFlow and probe its devices with the C++ start-up chatter sent to /dev/null.

    TensorFlow's native logging writes to file descriptor 2 before
    TF_CPP_MIN_LOG_LEVEL takes effect; without this, ``error:`` would not be
    the only line a failed command prints.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.get_logger().setLevel("ERROR")  # retracing notes: studies build many models on purpose
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class Terminated(Exception):
    """SIGTERM (``kill``) arrived: stop as Ctrl-C does, with one line."""


def _terminate(signum, frame):
    raise Terminated


def run(main, argv=None, tensorflow=True):
    """Call ``main(argv)``: bad input, a full disk or any other I/O failure is one ``error:`` line and status 2.

    A finished run asked for again prints that it is finished (status 0);
    Ctrl-C prints one line (status 130), ``kill`` too (status 143). Run
    directories are released. A command that trains nothing passes
    ``tensorflow=False`` and starts without TensorFlow's import.
    """
    import signal

    from experiments._rundir import AlreadyFinished, RunDir

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if tensorflow and not any(flag in (argv if argv is not None else sys.argv) for flag in ("-h", "--help")):
            import_tensorflow_quietly()
        status = main(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    except AlreadyFinished as e:
        print(e, flush=True)
        status = 0
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}; files written before are intact", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        status = 130
    except Terminated:
        print("error: stopped by a signal (SIGTERM); run the same command again to resume", file=sys.stderr)
        status = 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        RunDir.close_all()
    sys.exit(status or 0)
