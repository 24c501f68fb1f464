"""The flags the experiments share, and argparse types that refuse bad values with the reason, never coerce them.

Nothing here imports TensorFlow, so ``--help`` answers at once; parsing has no
side effect: a parser returns the values it was given, checked.
"""

import argparse
import importlib.util
import math
import re

from keras_apml import recipe as recipe_settings
from keras_apml.errors import InputError
from keras_apml.folders import TEST_FRACTION
from keras_apml.recipe import AIRBENCH, FEATURE_HEAD, Recipe

CACHE_WHERE = "$KERAS_APML_CACHE, else $XDG_CACHE_HOME/keras_apml or ~/.cache/keras_apml"


# --quick: this many images of a training set and of a test set (stratified), and one epoch.
QUICK_TRAIN, QUICK_TEST = 500, 200


MAX_SEED = 2 ** 32 - 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error:`` line and exit status 2."""

    def error(self, message):
        raise InputError(f"{message} (see --help)")

    def parse_args(self, args=None, namespace=None):
        """Parse once and check what the flags say together; nothing outside the namespace is changed."""
        parsed = super().parse_args(args, namespace)
        for action in self._actions:  # an empty value is never meant: --backbone "" is not the default
            if action.option_strings and getattr(parsed, action.dest, None) == "":
                self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got an empty string")
        if on_features(parsed):
            for flag, value in (("--model", getattr(parsed, "model", None)), ("--init", getattr(parsed, "init", None))):
                if value is not None:
                    self.error(f"{flag} concerns a network trained on the images; with --features or --backbone a "
                               "softmax head trains on the features")
        for needed, flags in (("backbone", ("weights", "backbone_size")), ("features", ("feature_layers",))):
            if hasattr(parsed, needed) and getattr(parsed, needed) is None:
                for flag in flags:
                    if getattr(parsed, flag) is not None:
                        self.error(f"--{flag.replace('_', '-')} concerns --{needed}, which is not given")
        if getattr(parsed, "tensorboard", False) and importlib.util.find_spec("tensorboard") is None:
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
    """--features or --backbone: the study on a model's cached features instead of images (a head, not a conv
    net)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--features", default=None, metavar="MODEL.keras",
                       help="train on this model's penultimate-layer features instead of the images: each image's "
                            "computed once (averaged with its mirror image's) and cached, a standardised softmax "
                            "head trained on them (recipe.FEATURE_HEAD; the recipe flags change it). E.g. the "
                            "offline source: experiments.train --data cifar10 --classes "
                            "airplane,bird,deer,dog,frog,horse,ship --model airbench")
    group.add_argument("--backbone", default=None, metavar="NAME",
                       help="as --features, with the pooled features of a pretrained keras.applications model "
                            "(e.g. EfficientNetV2B0, ResNet50V2, ConvNeXtTiny, MobileNetV3Small, VGG19): the "
                            "images resized inside it to the size it was trained at, its own preprocessing; "
                            "ImageNet weights downloaded by Keras (online), or --weights")
    p.add_argument("--feature-layers", type=layer_names, default=None, metavar="NAMES",
                   help="--features from these layers of the model (comma-separated, e.g. airbench's "
                        "block1_gelu2,block2_gelu2,features), each image-shaped output pooled to its channels' means "
                        "and maxima, concatenated; default: the penultimate layer")
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="--backbone's weights: a weights file (offline), or none (random weights: for tests, its "
                        "figures mean nothing); default: ImageNet's, downloaded")
    p.add_argument("--backbone-size", type=positive_int(1024), default=None, metavar="N",
                   help="--backbone's input size (default: the size it was trained at, 224 for most)")


def on_features(args):
    """Whether the study trains a head on cached features (--features or --backbone) instead of images."""
    return bool(getattr(args, "features", None) or getattr(args, "backbone", None))


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
    valid = re.fullmatch(r"((tcp|tls)://)?[A-Za-z0-9_.\-]+:\d{1,5}", text)
    if not valid or not 0 < int(text.rsplit(":", 1)[1]) < 65536:
        raise argparse.ArgumentTypeError(f"expected a scheduler address tcp://HOST:PORT, got {text!r}")
    return text if "://" in text else f"tcp://{text}"


def add_seeds(p, what, defaults, quick):
    """--seeds: several seeds, each a training of its own (``defaults`` and ``quick``: the study's blocks)."""
    p.add_argument("--seeds", type=seed_list, default=None,
                   help=f"comma-separated seeds of {what} (default: {shown(defaults['seeds'])}; --quick: "
                        f"{shown(quick['seeds'])})")


def shown(value):
    """A default as a help string shows it: a list comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, list) else value


def resolve_defaults(args, defaults, *cases):
    """Give every flag left at None its default: from ``defaults``, overridden by each ``(applies, values)`` of
    ``cases`` that applies, in order (the last wins). The one place a study's defaults are resolved."""
    chosen = dict(defaults)
    for applies, values in cases:
        if applies:
            chosen.update(values)
    for name, value in chosen.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


DATA_DEFAULT = "folder when --data-dir is a tree of image folders, whatever their class names, else benchmark"


def add_benchmark(p, kinds=("benchmark", "folder"), data_help=None):
    """The study's data (--data, one of ``kinds``): the benchmark drawn from CIFAR-10, the course's pickles, or your
    own image folders."""
    group = p.add_argument_group("car/truck/cat data")
    group.add_argument("--data", choices=kinds, default=None,
                       help=data_help or "the car/truck/cat benchmark drawn from CIFAR-10 at --data-dir (its "
                                         "pickled batches or its image-folder tree), or your own image folders at "
                                         f"--data-dir standing in for it (default: {DATA_DEFAULT})")
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
    group.add_argument("--labels", default=None, metavar="CSV[:COLUMN]",
                       help="the observed labels from a file instead of the class folders' names: path,label rows "
                            "(as annotation tools export them), or COLUMN of a wider CSV whose first row names its "
                            "columns and whose column path holds the paths (e.g. cifar10n-labels.csv:worst); every "
                            "training image needs a row, another split's image without one keeps its folder's label")
    group.add_argument("--true-labels", default=None, metavar="CSV[:COLUMN]",
                       help="the true class of every training image (path,label per row, as "
                            "experiments.make_dataset writes truth.csv, or COLUMN of a wider CSV as --labels): "
                            "metrics against true labels too; another split's image without a row is taken to be "
                            "labelled right")


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


def add_recipe(p, default=Recipe(), models=("small_cnn", "cifar_convnet", "airbench"), model_help=None,
               leave_out=(), about=None):
    """The training recipe's flags, one per field :func:`keras_apml.recipe.flag_fields` names (its help, choices or
    bounds from the field), plus --no-standardize and --init, but those ``leave_out`` names; a flag not given takes
    ``default``'s value, or that of the recipe the model brings (:func:`resolve_recipe`)."""
    about = about or ("airbench (--model airbench) and the head on --features come with their own recipe, which the "
                      "flags given change")
    group = p.add_argument_group("training recipe", about)
    for field in recipe_settings.flag_fields():
        if field.name in leave_out:
            continue
        meta, value = field.metadata, getattr(default, field.name)
        text = model_help if field.name == "model" and model_help else meta["flag"]
        if "default" not in text:
            text += f" (default: {'none' if value is None else f'{value:g}' if isinstance(value, float) else value})"
        kwargs = {"choices": models if field.name == "model" else meta["choices"]} if meta["choices"] else {
            "type": bounded(*meta["bounds"])}
        group.add_argument(f"--{field.name.replace('_', '-')}", default=None, help=text, **kwargs)
    if "no_standardize" not in leave_out:
        group.add_argument("--no-standardize", action="store_true",
                           help="feed [0, 1] pixels without per-channel z-scoring")
    if "init" not in leave_out:
        group.add_argument("--init", default=None, metavar="MODEL.keras",
                           help="start every model from this one's weights, all but the classifier (e.g. --model's "
                                "architecture pretrained with experiments.train --data cifar10 --classes ...)")


def bounded(low, high, low_open, high_open):
    """The argparse type of a bounded recipe field: a positive integer up to ``high``, or a number in range."""
    return positive_int(high) if isinstance(low, int) else number(low, high, low_open, high_open)


def base_recipe(args, default=Recipe()):
    """The recipe the flags given change: airbench's (``--model airbench``), the feature head's (``--features``),
    else the study's own ``default``."""
    if on_features(args):
        return FEATURE_HEAD
    return AIRBENCH if getattr(args, "model", None) == "airbench" else default


def resolve_recipe(args, default=Recipe(), **settings):
    """The :class:`Recipe` of :func:`add_recipe`'s flags, each flag not given taken from :func:`base_recipe` (one
    epoch under --quick); ``settings`` set fields the flags do not, the others are the base recipe's. The resolved
    values are written back into ``args``, so that a run records (and a resumed run compares) what it trains
    with."""
    base = base_recipe(args, default)
    names = [field.name for field in recipe_settings.flag_fields() if hasattr(args, field.name)]
    values = {name: getattr(base, name) if getattr(args, name) is None else getattr(args, name) for name in names}
    if getattr(args, "momentum", None) is not None and values["optimizer"] not in ("sgd", "nesterov"):
        raise InputError(f"--momentum is SGD's: --optimizer {values['optimizer']} has none")
    values.update(epochs=args.epochs or (1 if args.quick else base.epochs), init=getattr(args, "init", None),
                  standardize=base.standardize and not getattr(args, "no_standardize", False), **settings)
    recipe = base.replace(**values)
    vars(args).update({name: getattr(recipe, name) for name in names})
    if hasattr(args, "no_standardize"):
        args.no_standardize = not recipe.standardize
    return recipe


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


def layer_names(text):
    """argparse type: comma-separated layer names, none empty, none twice."""
    names = text.split(",")
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated layer names, each once, got {text!r}")
    return names


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


def given_folder_flags(args):
    """The image-folder flags set away from their defaults."""
    defaults = {"image_size": None, "test_fraction": TEST_FRACTION, "skip_unreadable": False, "true_labels": None,
                "labels": None, "memory_budget": None}
    return [f"--{k.replace('_', '-')}" for k, v in defaults.items() if getattr(args, k, v) != v]


def refuse_folder_flags(p, args):
    """A usage error when image-folder flags are given but the data is not your own folders (--data ...)."""
    given_flags = given_folder_flags(args)
    if given_flags:
        p.error(f"{', '.join(given_flags)} concern{'s' if len(given_flags) == 1 else ''} your own image folders: "
                "they need --data folder")
