"""The one way a model is built and trained: :func:`build` and :func:`fit` from a :class:`~keras_apml.recipe.Recipe`,
:func:`train` with an imbalance strategy, :func:`train_and_score` for a study's trainings.

Every model of every study comes from here: the conv nets of
``experiments.train`` and ``cifar_transfer``, the VGG19 transfer model and its
head, each imbalance strategy, the label-noise fold models and the
hyperparameter sweeps. Models are built right after seeding, so every
strategy trained with the same seed starts from the same initial weights.
"""

import contextlib
import dataclasses
import math
import time

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
import numpy as np

from keras_apml import checkpoints, evaluation, imbalance, models, optimization, pipeline
from keras_apml.augmentation import Augmentation
from keras_apml.errors import InputError


def set_seed(seed):
    """Seed Python, NumPy and the backend (``keras.utils.set_random_seed``)."""
    keras.utils.set_random_seed(int(seed))


@dataclasses.dataclass
class TrainResult:
    """What a training run did: its per-epoch history, whether it diverged, its wall time."""

    history: dict
    epochs_run: int
    diverged_epoch: int | None
    seconds: float
    resumed_from: int = 0  # epochs an earlier call had trained
    best_epoch: int | None = None  # the epoch whose weights the model kept (BestEpoch), or None: the last epoch's

    @property
    def diverged(self):
        return self.diverged_epoch is not None

    @property
    def status(self):
        """"completed" or "diverged at epoch N"."""
        return f"diverged at epoch {self.diverged_epoch}" if self.diverged else "completed"

    def to_dict(self):
        """JSON-ready: non-finite history values become None, divergence is stated."""
        return {
            "status": self.status,
            "diverged_epoch": self.diverged_epoch,
            "epochs_run": self.epochs_run,
            "resumed_from_epoch": self.resumed_from,
            "best_epoch": self.best_epoch,
            "history": {k: [v if math.isfinite(v) else None for v in vals] for k, vals in self.history.items()},
        }

    def timing(self):
        """Wall time of the fit, in total and per epoch."""
        return {"fit_seconds": round(self.seconds, 3),
                "seconds_per_epoch": round(self.seconds / max(1, self.epochs_run), 3)}


def fit_dataset(model, train_data, *, epochs, validation_data=None, steps_per_epoch=None, class_weight=None,
                callbacks=(), verbose=1):
    """``model.fit`` plus divergence detection: the first epoch whose loss is NaN or infinite.

    TerminateOnNaN (always on) ends the run inside that epoch, whose NaN mean
    loss still reaches the history. With a :class:`~keras_apml.checkpoints.ResumableHistory` among the callbacks
    the history and timing are the whole run's, epochs of earlier calls included;
    with a :class:`~keras_apml.checkpoints.BestEpoch`, the result names the epoch whose weights were kept.
    """
    start = time.perf_counter()
    history = model.fit(
        train_data,
        epochs=epochs,
        validation_data=validation_data,
        steps_per_epoch=steps_per_epoch,
        class_weight=class_weight,
        shuffle=False,  # the tf.data pipeline shuffles
        callbacks=[keras.callbacks.TerminateOnNaN(), *callbacks],
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    logs = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    resumable = next((c for c in callbacks if isinstance(c, checkpoints.ResumableHistory)), None)
    resumed_from = 0
    if resumable is not None and resumable.history_file.is_file():
        logs, resumed_from = checkpoints.read_history(resumable.history_file), resumable.restored_epoch
        seconds = sum(v for v in logs.get("epoch_seconds", []) if math.isfinite(v))
    logs.pop("epoch_seconds", None)
    losses = logs.get("loss", [])
    diverged = next((i + 1 for i, v in enumerate(losses) if not math.isfinite(v)), None)
    epochs_run = len(losses) if diverged is None else diverged
    best = next((c for c in callbacks if isinstance(c, checkpoints.BestEpoch)), None)
    return TrainResult(logs, epochs_run, diverged, seconds, resumed_from, best and best.kept_epoch)


def build(recipe, x_train, num_classes, seed):
    """The recipe's model for ``num_classes``, standardised on ``x_train``; its weights depend only on ``seed``.

    With ``recipe.init`` every layer but the classifier starts from that
    model's weights, its standardisation included: the features go on seeing
    the inputs they were trained on.
    """
    if recipe.augment:  # a bad spec is refused here, with the model, before anything is trained
        pipeline.check_augmentation(x_train, recipe.balance, Augmentation.from_string(recipe.augment))
    set_seed(seed)
    kwargs = {} if recipe.dropout is None else {"dropout": recipe.dropout}
    if x_train is not None:
        kwargs["input_shape"] = tuple(x_train.shape[1:])
    try:
        if recipe.model == "vgg19_transfer":  # VGG19 carries its own preprocessing
            model = models.vgg19_transfer(weights=recipe.weights, num_classes=num_classes, upsample=recipe.upsample,
                                          **kwargs)
        elif recipe.model == "airbench":  # its first layer whitens patches, fitted on the training images
            model = models.airbench(num_classes=num_classes, whitening=models.fit_whitening(x_train), **kwargs)
        else:
            standardizer = models.fit_standardizer(x_train) if recipe.standardize else None
            model = models.BUILDERS[recipe.model](num_classes=num_classes, standardizer=standardizer, **kwargs)
    except InputError:  # said already, in the user's terms (unreachable weights, a weights file that is not one)
        raise
    except ValueError as e:  # Keras: a layer's output would be empty (images too small for the architecture)
        shape = "x".join(map(str, kwargs.get("input_shape", models.INPUT_SHAPE)[:2]))
        raise InputError(f"{recipe.model} cannot take {shape} images ({str(e).splitlines()[0][:160]}): it needs "
                         "larger images, or another model") from None
    if recipe.init is not None:
        models.copy_weights(models.load_model(recipe.init), model)
    return model


def fit(model, x, y, recipe, *, seed=0, validation=None, callbacks=(), verbose=0, distribution=None, jit_compile=False):
    """Compile ``model`` with the recipe's optimiser and schedule and train it on ``(x, y)`` as the recipe says.

    ``x`` are uint8 images (or float features, which pass unscaled);
    ``validation`` is ``(x, y)``, scored after every epoch (its balanced
    accuracy logged as ``val_balanced_accuracy``, what
    :class:`~keras_apml.checkpoints.BestEpoch` keeps the best epoch by);
    ``distribution`` a tf.distribute strategy to compile under. Returns
    ``(TrainResult, labels fitted, class weights or None)``.
    """
    augmentation = Augmentation.from_string(recipe.augment, seed=seed) if recipe.augment else None
    ds, steps, weights, y_fit = pipeline.training_dataset(x, y, recipe.balance, recipe.batch_size, seed=seed,
                                                          augmentation=augmentation,
                                                          drop_remainder=recipe.drop_remainder)
    steps_per_epoch = steps or (len(y_fit) // recipe.batch_size
                                if pipeline.drops_remainder(len(y_fit), recipe.batch_size, recipe.drop_remainder)
                                else math.ceil(len(y_fit) / recipe.batch_size))
    lr, schedule_callbacks = optimization.learning_rate_schedule(recipe.schedule, recipe.lr, recipe.epochs,
                                                                 steps_per_epoch)
    with distribution.scope() if distribution is not None else contextlib.nullcontext():
        optimizer = optimization.make_optimizer(recipe.optimizer, lr, recipe.momentum, recipe.weight_decay, recipe.ema)
        optimization.compile_model(model, optimizer, jit_compile=jit_compile,
                                   steps_per_execution=recipe.steps_per_execution,
                                   label_smoothing=recipe.label_smoothing)
    recipe_callbacks = [checkpoints.EMAWeights()] if recipe.ema is not None else []  # first: the rest see the average
    if augmentation is not None and augmentation.alternating_flip:
        recipe_callbacks.append(augmentation.epoch_callback())
    if recipe.whiten_bias_epochs is not None:  # the whitening layer's kernel stays frozen; its bias trains a while
        whitening = model.get_layer("whiten")
        whitening.trainable = True
        recipe_callbacks.append(optimization.TrainFor(whitening.bias, recipe.whiten_bias_epochs))
    if recipe.lookahead is not None:
        recipe_callbacks.append(optimization.Lookahead(recipe.epochs * steps_per_epoch, decay=recipe.lookahead))
    validation_data, scoring = None, []
    if validation is not None:
        validation_data = pipeline.make_dataset(*validation, recipe.batch_size)
        scoring = [evaluation.balanced_accuracy_callback({"val": validation})]  # before the callbacks that read it
    result = fit_dataset(model, ds, epochs=recipe.epochs, validation_data=validation_data, steps_per_epoch=steps,
                         class_weight=weights, verbose=verbose,
                         callbacks=[*recipe_callbacks, *scoring, *schedule_callbacks, *callbacks])
    return result, y_fit, weights


def check(recipe, x_train, num_classes):
    """Build the recipe's model once and drop it: a missing, unloadable or mismatched ``init`` or weights file fails
    now, before a run directory exists or an epoch is trained."""
    build(recipe, x_train[:64], num_classes, seed=0)


def train(name, x, y, recipe, *, seed=0, validation=None, callbacks=(), verbose=0):
    """Train the recipe's model on ``(x, y)`` with strategy ``name``; returns ``(model, TrainResult, labels_fitted)``.

    ``two_stage`` trains a first-class-vs-rest (car vs rest) model and a model for the rest, and
    returns them joined by :func:`models.two_stage` (the two TrainResults merged:
    the second stage's history under ``stage2_*`` keys). ``callbacks`` (Keras
    callbacks) go to a single model's fit; two stages take none.
    """
    plan = imbalance.strategy(name)
    num_classes = int(max(y.max(), validation[1].max() if validation else 0)) + 1
    x_fit, y_fit = x, y
    if plan.offline_copies:
        augmentation = Augmentation.from_string(plan.augment, seed=seed)
        x_fit, y_fit = imbalance.augment_minority(x, y, augmentation, plan.offline_copies)
    recipe = plan.apply(recipe)
    if not plan.two_stage:
        model = build(recipe, x, num_classes, seed)
        result, fitted, _ = fit(model, x_fit, y_fit, recipe, seed=seed, validation=validation, callbacks=callbacks,
                                verbose=verbose)
        return model, result, fitted
    if callbacks:
        raise InputError("the two-stage strategy trains two models: per-model callbacks do not apply")
    common = dict(seed=seed, verbose=verbose)
    first = build(recipe, x, 2, seed)
    rest = build(recipe, x, num_classes - 1, seed)
    first_validation = rest_validation = None
    if validation is not None:
        x_val, y_val = validation
        first_validation = (x_val, (y_val != 0).astype(y_val.dtype))
        rest_validation = (x_val[y_val != 0], y_val[y_val != 0] - 1)
    first_result, _, _ = fit(first, x_fit, (y_fit != 0).astype(y_fit.dtype), recipe, validation=first_validation,
                             **common)
    keep = y_fit != 0
    rest_result, _, _ = fit(rest, x_fit[keep], y_fit[keep] - 1, recipe, validation=rest_validation, **common)
    merged = TrainResult(
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
    callbacks = [evaluation.balanced_accuracy_callback(tracked)] if tracked else ()
    model, result, fitted = train(name, x, y, recipe, seed=seed, validation=validation, callbacks=callbacks)
    metrics = None if result.diverged else {
        split: evaluation.evaluate(model, xs, ys, class_names, y_true=ys_true) for split, (xs, ys, ys_true) in
        splits.items()}
    return {"metrics": metrics, "result": result,
            "fitted_class_counts": np.bincount(fitted, minlength=len(class_names)).tolist(),
            "model": model if keep_model else None}
