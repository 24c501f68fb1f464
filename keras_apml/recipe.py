"""How a model is built and trained, as data: the choices, :class:`Recipe` and the named recipes.

:mod:`keras_apml.trainer` builds and trains what a recipe says. This module
imports nothing heavier than :mod:`keras_apml.errors`, so command lines can
offer its choices and defaults without importing TensorFlow.
"""

import dataclasses
from pathlib import Path

from keras_apml.errors import InputError, check_number

MODELS = ("small_cnn", "cifar_convnet", "airbench", "vgg19_transfer", "linear")
OPTIMIZERS = ("sgd", "nesterov", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "plateau", "cosine", "onecycle", "triangle")
RESAMPLERS = ("random_over", "under", "smote", "over+under", "smote+under")
BALANCE = ("none", "class_weight", "oversample", *RESAMPLERS)
DISTRIBUTE = ("none", "mirrored", "multiworker")  # tf.distribute strategies (not imbalance strategies)
MAX_BATCH, MAX_EPOCHS = 2 ** 20, 100_000


def setting(default, heading, *, flag=None, choices=None, bounds=None, words=None):
    """A :class:`Recipe` field: its default, its heading (table column and description), and where the studies'
    shared flags set it, the flag's help text.

    ``choices`` or ``bounds`` (``(low, high, low_open, high_open)``; integer bounds: a whole number) check a value
    here and on the command line alike; ``words(recipe)`` says how the value reads, None where the recipe does
    not use it (by default: the value, unless it is None, "none" or 0).
    """
    return dataclasses.field(default=default, metadata={"heading": heading, "flag": flag, "choices": choices,
                                                        "bounds": bounds, "words": words})


def _uses_momentum(recipe):
    return f"{recipe.momentum:g}" if recipe.optimizer in ("sgd", "nesterov") else None


def _inputs(recipe):
    special = {"vgg19_transfer": "VGG19's preprocessing", "airbench": "whitened 2x2 patches"}
    return special.get(recipe.model) or ("standardised" if recipe.standardize else "raw [0, 1]")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one model is built and trained; with a seed, one training is fully determined.

    The defaults are the hyperparameter study's on the car/truck/cat
    benchmark (docs/RESULTS.md). Each field is declared once, with
    :func:`setting`: its check, its column in :func:`table_row`'s tables, its
    words in :meth:`describe` and, for the shared flags, its help text
    (``experiments._flags.add_recipe`` makes the flag from it). ``augment`` is
    an online augmentation spec with ImageDataGenerator's argument names,
    ``ema`` the momentum of Keras's moving average of the weights
    (validation, the best epoch and the final model use the averaged
    weights), ``init`` a .keras model of the same architecture whose weights
    (all but the classifier) start every model.
    """

    model: str = setting("cifar_convnet", "model", choices=MODELS, flag="the network")
    optimizer: str = setting("adam", "optimizer", choices=OPTIMIZERS, flag="the optimiser")
    lr: float = setting(1e-3, "learning rate", bounds=(0.0, None, True, False), flag="learning rate")
    momentum: float = setting(0.9, "momentum", bounds=(0.0, 1.0, False, True), words=_uses_momentum,
                              flag="SGD momentum (only with --optimizer sgd or nesterov)")
    weight_decay: float = setting(0.0, "weight decay", bounds=(0.0, None, False, False),
                                  flag="decoupled weight decay")
    schedule: str = setting("constant", "schedule", choices=SCHEDULES,
                            flag="learning-rate schedule: step (x0.1 at 1/2 and 3/4 of the run), plateau, cosine, "
                                 "onecycle (warm-up to the rate over 23%% of the steps, cosine down to 7%% of it), "
                                 "triangle (airbench's: linear from 20%% of the rate up to it at 23%% of the steps, "
                                 "linear down to 7%%)")
    batch_size: int = setting(32, "batch size", bounds=(1, MAX_BATCH, False, False), flag="batch size")
    drop_remainder: bool = setting(False, "last partial batch", words=lambda r: r.drop_remainder and "dropped")
    steps_per_execution: int = setting(1, "batches per call", bounds=(1, 1024, False, False),
                                       words=lambda r: r.steps_per_execution > 1 and str(r.steps_per_execution),
                                       flag="batches per call into the compiled train function (more: less "
                                            "overhead per batch, for a small model such as a head on features)")
    epochs: int = setting(50, "epochs", bounds=(1, MAX_EPOCHS, False, False), flag="training epochs (--quick: 1)")
    standardize: bool = setting(True, "inputs", words=_inputs)
    balance: str = setting("none", "balance", choices=BALANCE)
    augment: str | None = setting(None, "augmentation", words=lambda r: r.augment and r.augment.replace(",", ", "))
    dropout: float | None = setting(None, "dropout", bounds=(0.0, 1.0, False, True),
                                    flag="dropout rate of the network's dropout layers (none: the network's own; "
                                         "airbench has none)")
    label_smoothing: float = setting(0.0, "label smoothing", bounds=(0.0, 1.0, False, True),
                                     flag="label smoothing of the cross-entropy (0: none)")
    ema: float | None = setting(None, "weight EMA", bounds=(0.0, 1.0, True, True),
                                flag="keep an exponential moving average of the weights with this momentum (e.g. "
                                     "0.99) and validate and save the averaged weights")
    lookahead: float | None = setting(None, "lookahead", bounds=(0.0, 1.0, True, True),
                                      flag="airbench's lookahead with this decay (e.g. 0.95): from the 4th epoch "
                                           "on, every 5 steps the weights, BatchNorm statistics too, are averaged "
                                           "into a copy at decay^5 x (step/steps)^3 and training goes on from it; "
                                           "each epoch ends on it")
    whiten_bias_epochs: int | None = setting(None, "whitening bias trained", bounds=(1, MAX_EPOCHS, False, False),
                                             words=lambda r: r.whiten_bias_epochs and
                                             f"{r.whiten_bias_epochs} epochs",
                                             flag="airbench: train its whitening layer's bias for this many first "
                                                  "epochs, then freeze it (airbench94: 3)")
    init: str | None = setting(None, "start from")
    weights: str | None = setting("imagenet", "VGG19 base", words=lambda r: (r.weights or "none (random)")
                                  if r.model == "vgg19_transfer" else None)
    upsample: int | None = setting(None, "VGG19 input size", bounds=(32, 512, False, False),
                                   words=lambda r: r.upsample and f"{r.upsample}x{r.upsample}")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, choices, bounds = getattr(self, field.name), field.metadata["choices"], field.metadata["bounds"]
            if choices and value not in choices:
                raise InputError(f"unknown {field.name} {value!r}; choose from {', '.join(choices)}")
            if bounds and value is not None:
                _check_bounds(field, value)
        if self.dropout is not None and self.model == "airbench":
            raise InputError("airbench has no dropout (its recipe regularises with label smoothing)")
        if self.whiten_bias_epochs is not None and self.model != "airbench":
            raise InputError("only airbench has a whitening layer whose bias could train")
        if self.lookahead is not None and self.steps_per_execution != 1:
            raise InputError("the lookahead averages the weights every 5 steps: it needs one batch per call "
                             "(steps_per_execution 1)")
        if self.upsample is not None and self.model != "vgg19_transfer":
            raise InputError(f"upsampling inside the model is VGG19's; {self.model} takes images as they come")
        if self.init is not None and not Path(self.init).is_file():
            raise InputError(f"--init model {self.init} does not exist")
        if self.weights not in ("imagenet", None) and not Path(self.weights).is_file():
            raise InputError(f"VGG19 weights file {self.weights} does not exist")

    def replace(self, **changes):
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The recipe as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def settings(self):
        """``{heading: words}`` of every setting this recipe uses, in field order."""
        return {field.metadata["heading"]: words for field, words in zip(dataclasses.fields(self), table_row(self))
                if words is not None}

    def describe(self):
        """The recipe in words: ``model cifar_convnet, optimizer adam, learning rate 0.001, ...``."""
        return ", ".join(f"{heading} {words}" for heading, words in self.settings().items())


def _check_bounds(field, value):
    """Refuse a value of a bounded field outside its bounds (integer bounds: a whole number in them)."""
    low, high, low_open, high_open = field.metadata["bounds"]
    name = field.metadata["heading"]
    if isinstance(low, int):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(f"{name} must be an integer in {low}..{high}, got {value!r}")
        return
    check_number(name, value, low=low, high=high, low_open=low_open, high_open=high_open)


def table_row(recipe):
    """Each field's words in field order (None: not used by this recipe), for tables and descriptions."""
    row = []
    for field in dataclasses.fields(recipe):
        value, words = getattr(recipe, field.name), field.metadata["words"]
        if words is not None:
            row.append(words(recipe) or None)
        elif value is None or value == "none" or (value == 0 and not isinstance(value, bool)):
            row.append(None)
        else:
            row.append(f"{value:g}" if isinstance(value, float) else str(value))
    return row


def headings():
    """Each field's heading, in field order."""
    return [field.metadata["heading"] for field in dataclasses.fields(Recipe)]


def flag_fields():
    """The fields the studies' shared recipe flags set, in field order."""
    return [field for field in dataclasses.fields(Recipe) if field.metadata["flag"]]


# The CIFAR-10 study's recipes (experiments.cifar_transfer; figures in docs/RESULTS.md). The conv net: Adam, a
# step schedule (x0.1 at 1/2 and 3/4 of the run), batches of 64; run 3 adds CIFAR_AUGMENT, whose shifts move whole
# pixels (interpolation_order=0, as a random crop does): bilinear shifts blur the training images, never the test ones.
CIFAR_CONVNET = Recipe(model="cifar_convnet", lr=1e-3, batch_size=64, epochs=140, schedule="step", dropout=0.25)
CIFAR_AUGMENT = ("horizontal_flip,width_shift_range=0.125,height_shift_range=0.125,fill_mode=constant,cval=0,"
                 "interpolation_order=0")
# The fast recipe for the same net (cifar_transfer --recipe fast): what carries over from airbench to a net this
# small: batches of 256 (the fastest on 2 CPU cores), a one-cycle schedule, label smoothing and an EMA of the
# weights, for half the epochs (70: what fits in 15 minutes on 2 CPU cores; 40 were measured short of run 3's
# accuracy). Measured against CIFAR_CONVNET in docs/RESULTS.md.
CIFAR_CONVNET_FAST = CIFAR_CONVNET.replace(lr=2e-3, batch_size=256, epochs=70, schedule="onecycle",
                                           label_smoothing=0.1, ema=0.99)
# The strong model (models.airbench) and airbench94's recipe in Keras terms: Nesterov SGD at momentum 0.85 with
# airbench's rate per mean loss (11.5 per kilostep, summed loss: 1.5), label smoothing 0.2, 2-pixel whole-pixel
# translation and airbench's alternating flip, full batches of 1024 (airbench drops the last partial one, which
# its summed loss would weigh little and a mean loss weighs like any other), its triangular schedule, its
# lookahead (decay 0.95, BatchNorm statistics averaged too, from the 4th epoch) and the whitening bias trained for
# the first 3 epochs; 10 epochs (airbench94: 9.9). Its weight decay per step, 0.0153 * 1024 / kilostep_scale
# through the momentum (/ (1 - 0.85)), is 0.0133 of each weight at the peak rate; Keras decays by rate *
# weight_decay, outside the momentum: 0.0133 / 1.5. Each part measured in docs/RESULTS.md
# (benchmarks.airbench_parts; against airbench94 in PyTorch: benchmarks.airbench_side_by_side).
AIRBENCH_AUGMENT = ("alternating_flip,width_shift_range=0.0625,height_shift_range=0.0625,fill_mode=reflect,"
                    "interpolation_order=0")
AIRBENCH = Recipe(model="airbench", optimizer="nesterov", lr=1.5, momentum=0.85, weight_decay=8.87e-3,
                  batch_size=1024, drop_remainder=True, epochs=10, schedule="triangle", standardize=False,
                  augment=AIRBENCH_AUGMENT, label_smoothing=0.2, lookahead=0.95, whiten_bias_epochs=3)
# The head on a backbone's cached features (the studies' --features): a standardised softmax, trained with class
# weights or a sampler like any model, in seconds; its rate chosen by one K-fold's detection F1 (docs/RESULTS.md).
FEATURE_HEAD = Recipe(model="linear", lr=3e-3, batch_size=256, epochs=30, weight_decay=1e-4)
# The VGG19 head on cached features: batches of 256 trained as well as 64 or 128, and faster; 32 batches per
# train-function call cut the per-step overhead of so small a model (benchmarks.transfer).
VGG19_HEAD = Recipe(model="vgg19_transfer", lr=1e-3, batch_size=256, steps_per_execution=32, epochs=10,
                    standardize=False)
