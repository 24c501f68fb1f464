"""The imbalance strategies of the car/truck/cat studies: what is done about the imbalance.

A strategy (a key of ``STRATEGIES``) fixes how the training data is balanced
and augmented; :func:`train` applies it to a :class:`~keras_apml.recipe.Recipe`
and trains through the one training path (``keras_apml.recipe``). Models are
built right after seeding, so every strategy trained with the same seed
starts from the same initial weights.
"""

import dataclasses

import numpy as np

from keras_apml import recipe as training_path
from keras_apml.errors import InputError

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
        from keras_apml.recipe import RESAMPLERS

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


def train(name, x, y, recipe, *, seed=0, validation=None, callbacks=(), verbose=0):
    """Train the recipe's model on ``(x, y)`` with strategy ``name``; returns ``(model, TrainResult, labels_fitted)``.

    ``two_stage`` trains a first-class-vs-rest (car vs rest) model and a model for the rest, and
    returns them joined by :func:`models.two_stage` (the two TrainResults merged:
    the second stage's history under ``stage2_*`` keys). ``callbacks`` (Keras
    callbacks) go to a single model's fit; two stages take none.
    """
    from keras_apml import models, training
    from keras_apml.augmentation import Augmentation

    plan = strategy(name)
    num_classes = int(max(y.max(), validation[1].max() if validation else 0)) + 1
    x_fit, y_fit = x, y
    if plan.offline_copies:
        x_fit, y_fit = augment_minority(x, y, Augmentation.from_string(plan.augment, seed=seed), plan.offline_copies)
    recipe = plan.apply(recipe)
    if not plan.two_stage:
        model = training_path.build(recipe, x, num_classes, seed)
        result, fitted, _ = training_path.fit(model, x_fit, y_fit, recipe, seed=seed, validation=validation,
                                              callbacks=callbacks, verbose=verbose)
        return model, result, fitted
    if callbacks:
        raise InputError("the two-stage strategy trains two models: per-model callbacks do not apply")
    common = dict(seed=seed, verbose=verbose)
    first = training_path.build(recipe, x, 2, seed)
    rest = training_path.build(recipe, x, num_classes - 1, seed)
    first_validation = rest_validation = None
    if validation is not None:
        x_val, y_val = validation
        first_validation = (x_val, (y_val != 0).astype(y_val.dtype))
        rest_validation = (x_val[y_val != 0], y_val[y_val != 0] - 1)
    first_result, _, _ = training_path.fit(first, x_fit, (y_fit != 0).astype(y_fit.dtype), recipe,
                                           validation=first_validation, **common)
    keep = y_fit != 0
    rest_result, _, _ = training_path.fit(rest, x_fit[keep], y_fit[keep] - 1, recipe, validation=rest_validation,
                                          **common)
    merged = training.TrainResult(
        history={**first_result.history, **{f"stage2_{k}": v for k, v in rest_result.history.items()}},
        epochs_run=first_result.epochs_run + rest_result.epochs_run,
        diverged_epoch=first_result.diverged_epoch or rest_result.diverged_epoch,
        seconds=first_result.seconds + rest_result.seconds,
    )
    return models.two_stage(first, rest), merged, y_fit


def train_and_score(name, seed, x, y, recipe, splits, class_names, *, validation=None, tracked=None,
                    keep_model=False):
    """Train strategy ``name`` with ``seed`` and evaluate it on each named split ``(x, y, y_true or None)``.

    One training of a study, whole in its arguments (``keras_apml.cluster`` runs
    it in turn or on a cluster). ``validation`` is scored after every epoch
    (Keras's ``val_`` logs); ``tracked`` ``{name: (x, y)}`` adds
    ``<name>_balanced_accuracy`` to every epoch's history. Returns a dict:
    ``metrics`` (``{split: evaluation.evaluate(...)}``, None when training
    diverged), ``result`` (the TrainResult), ``fitted_class_counts`` (images
    per class it was fitted on) and ``model`` (None unless ``keep_model``).
    """
    from keras_apml import evaluation

    callbacks = [evaluation.balanced_accuracy_callback(tracked)] if tracked else ()
    model, result, fitted = train(name, x, y, recipe, seed=seed, validation=validation, callbacks=callbacks)
    metrics = None if result.diverged else {
        split: evaluation.evaluate(model, xs, ys, class_names, y_true=ys_true) for split, (xs, ys, ys_true) in
        splits.items()}
    return {"metrics": metrics, "result": result,
            "fitted_class_counts": np.bincount(fitted, minlength=len(class_names)).tolist(),
            "model": model if keep_model else None}
