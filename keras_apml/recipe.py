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
SCHEDULES = ("constant", "step", "plateau", "cosine", "onecycle")
RESAMPLERS = ("random_over", "under", "smote", "over+under", "smote+under")
BALANCE = ("none", "class_weight", "oversample", *RESAMPLERS)
DISTRIBUTE = ("none", "mirrored", "multiworker")  # tf.distribute strategies (not imbalance strategies)
MAX_BATCH, MAX_EPOCHS = 2 ** 20, 100_000


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one model is built and trained; with a seed, one training is fully determined.

    The defaults are the hyperparameter study's on the car/truck/cat
    benchmark (docs/RESULTS.md). ``balance`` is one of BALANCE, ``augment``
    an online augmentation spec with ImageDataGenerator's argument names,
    ``label_smoothing`` Keras's (the loss's targets move that share towards
    uniform), ``ema`` the momentum of an exponential moving average of the
    weights (Keras's optimiser ``use_ema``: validation, the best epoch and the
    final model use the averaged weights; None: off), ``init`` a .keras model
    of the same architecture whose weights (all but the classifier) start
    every model, ``weights`` the VGG19 base's weights
    ("imagenet", None or a file), ``upsample`` the size VGG19 resizes images
    to inside the model (None: as they come), ``dropout`` the conv net's
    (None: its default).
    """

    model: str = "cifar_convnet"
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 50
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    standardize: bool = True
    balance: str = "none"
    augment: str | None = None
    dropout: float | None = None
    label_smoothing: float = 0.0
    ema: float | None = None
    init: str | None = None
    weights: str | None = "imagenet"
    upsample: int | None = None

    def __post_init__(self):
        for name, value, choices in (("model", self.model, MODELS), ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("schedule", self.schedule, SCHEDULES), ("balance", self.balance, BALANCE)):
            if value not in choices:
                raise InputError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
        check_number("learning rate", self.lr, low=0.0, low_open=True)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_number("weight decay", self.weight_decay, low=0.0)
        if self.dropout is not None:
            if self.model == "airbench":
                raise InputError("airbench has no dropout (its recipe regularises with label smoothing)")
            check_number("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_number("label smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        if self.ema is not None:
            check_number("EMA momentum", self.ema, low=0.0, high=1.0, low_open=True, high_open=True)
        for name, value, high in (("batch size", self.batch_size, MAX_BATCH), ("epochs", self.epochs, MAX_EPOCHS)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise InputError(f"{name} must be an integer in 1..{high}, got {value!r}")
        if self.upsample is not None:
            if self.model != "vgg19_transfer":
                raise InputError(f"upsampling inside the model is VGG19's; {self.model} takes images as they come")
            if isinstance(self.upsample, bool) or not isinstance(self.upsample, int) or not 32 <= self.upsample <= 512:
                raise InputError(f"the VGG19 input size must be an integer in 32..512, got {self.upsample!r}")
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

    def describe(self):
        """The recipe in words: ``cifar_convnet, adam lr 0.001, batch 32, 50 epochs, ...``."""
        parts = [self.model, f"{self.optimizer} lr {self.lr:g}", f"batch {self.batch_size}",
                 f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}", f"{self.schedule} schedule"]
        if self.optimizer in ("sgd", "nesterov"):
            parts.append(f"momentum {self.momentum:g}")
        if self.weight_decay:
            parts.append(f"weight decay {self.weight_decay:g}")
        parts.append("standardised" if self.standardize else "raw [0, 1] pixels")
        if self.balance != "none":
            parts.append(f"balance {self.balance}")
        if self.augment:
            parts.append(f"augmentation {self.augment}")
        if self.dropout is not None:
            parts.append(f"dropout {self.dropout:g}")
        if self.label_smoothing:
            parts.append(f"label smoothing {self.label_smoothing:g}")
        if self.ema is not None:
            parts.append(f"weight EMA {self.ema:g}")
        if self.upsample:
            parts.append(f"resized to {self.upsample}x{self.upsample} inside the model")
        if self.init:
            parts.append(f"from {self.init}")
        return ", ".join(parts)


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
# airbench's rate per mean loss (11.5 per kilostep, summed loss: 1.5), label smoothing 0.2, flip and 2-pixel
# whole-pixel translation, batches of 1024, a one-cycle schedule and an EMA of the weights (for airbench's
# lookahead); 10 epochs, airbench94's, about 20 minutes on 2 CPU cores (docs/RESULTS.md). Its weight decay per
# step, 0.0153 * 1024 / kilostep_scale through the momentum (/ (1 - 0.85)), is 0.0133 of each weight at the
# peak rate; Keras decays by rate * weight_decay, outside the momentum: 0.0133 / 1.5.
AIRBENCH_AUGMENT = ("horizontal_flip,width_shift_range=0.0625,height_shift_range=0.0625,fill_mode=reflect,"
                    "interpolation_order=0")
AIRBENCH = Recipe(model="airbench", optimizer="nesterov", lr=1.5, momentum=0.85, weight_decay=8.87e-3,
                  batch_size=1024, epochs=10, schedule="onecycle", standardize=False, augment=AIRBENCH_AUGMENT,
                  label_smoothing=0.2, ema=0.95)
# The head on a backbone's cached features (the studies' --features): a standardised softmax, trained with class
# weights or a sampler like any model, in seconds; its rate chosen by one K-fold's detection F1 (docs/RESULTS.md).
FEATURE_HEAD = Recipe(model="linear", lr=3e-3, batch_size=256, epochs=30, weight_decay=1e-4)
# The VGG19 head on cached features: batches of 256 trained as well as 64 or 128, and faster; 32 batches per
# train-function call cut the per-step overhead of so small a model (benchmarks.transfer).
VGG19_HEAD = Recipe(model="vgg19_transfer", lr=1e-3, batch_size=256, epochs=10, standardize=False)
HEAD_STEPS_PER_EXECUTION = 32
