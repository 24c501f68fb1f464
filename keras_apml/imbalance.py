"""The imbalance strategies of the car/truck/cat studies: what is done about the imbalance.

A strategy (a key of ``STRATEGIES``) fixes how the training data is balanced
and augmented; :func:`keras_apml.trainer.train` applies it to a
:class:`~keras_apml.recipe.Recipe`. Like the recipe, this is data: no TensorFlow.
"""

import dataclasses

import numpy as np

from keras_apml.errors import InputError
from keras_apml.recipe import RESAMPLERS

# Online and offline augmentation for the benchmark: mirror, shift, rotate a little.
AUGMENT = "horizontal_flip,width_shift_range=0.1,height_shift_range=0.1,rotation_range=10,fill_mode=reflect"
FLIP = "horizontal_flip"  # left-right mirror images only


@dataclasses.dataclass(frozen=True)
class Strategy:
    """What is done about the imbalance: a ``pipeline.BALANCE`` method, augmentation, or two stages."""

    balance: str = "none"
    online_augmentation: bool = False
    offline_copies: int = 0  # augmented copies added of every class but the largest
    two_stage: bool = False
    description: str = ""
    augment: str = AUGMENT  # the augmentation spec, where there is augmentation

    @property
    def streams(self):
        """Whether it trains on images streamed from their files (no resampling or offline copies in memory)."""
        return self.balance not in RESAMPLERS and not self.offline_copies

    @property
    def on_features(self):
        """Whether it applies to cached features (``--features``): no augmentation, which needs images."""
        return not self.online_augmentation and not self.offline_copies

    def apply(self, recipe):
        """The recipe trained this way: its balance and its online augmentation (or none)."""
        return recipe.replace(balance=self.balance, augment=self.augment if self.online_augmentation else None)


STRATEGIES = {
    "none": Strategy(description="plain cross-entropy on the imbalanced data"),
    "class_weight": Strategy("class_weight", description="loss weighted n / (k * n_class)"),
    "oversample": Strategy("oversample", description="balanced batches drawn in tf.data"),
    "under": Strategy("under", description="RandomUnderSampler down to the smallest class"),
    "over+under": Strategy("over+under", description="RandomOverSampler up to the mean count, then under"),
    "smote": Strategy("smote", description="SMOTE up to the largest class"),
    "random_over": Strategy("random_over", description="RandomOverSampler up to the largest class"),
    "augment_offline": Strategy(offline_copies=2,
                                description="2 augmented copies of each image outside the largest class"),
    "augment_online": Strategy(online_augmentation=True, description="random flips, shifts, rotations per batch"),
    "augment+oversample": Strategy("oversample", online_augmentation=True,
                                   description="balanced batches, augmented"),
    "augment+class_weight": Strategy("class_weight", online_augmentation=True,
                                     description="class-weighted loss, augmented batches"),
    "flip+class_weight": Strategy("class_weight", online_augmentation=True, augment=FLIP,
                                  description="class-weighted loss, batches randomly mirrored (no shifts or "
                                              "rotations)"),
    "two_stage": Strategy("class_weight", two_stage=True,
                          description="the first class against the rest (car vs not-car), then the rest told "
                                      "apart; each stage class-weighted"),
}

# The imbalance study's best strategy (docs/RESULTS.md), the label-noise and hyperparameter studies' default.
BEST_STRATEGY = "augment+oversample"


def strategy(name):
    """The :class:`Strategy` called ``name``; a clear error for an unknown one."""
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def augment_minority(x, y, augmentation, copies):
    """Add ``copies`` augmented copies of every image outside the largest class (offline augmentation)."""
    largest = np.bincount(y).argmax()
    minority = y != largest
    x_more, y_more = augmentation.apply_offline(x[minority], y[minority], copies)
    return np.concatenate([x[~minority], x_more]), np.concatenate([y[~minority], y_more])
