"""How a model learns: Keras's optimisers, learning-rate schedules and the compiled loss, from a recipe's words."""

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras

from keras_apml.custom_objects import SmoothedSparseCrossentropy, Triangle
from keras_apml.errors import InputError
from keras_apml.recipe import OPTIMIZERS, SCHEDULES


def make_optimizer(name="adam", learning_rate=1e-3, momentum=0.9, weight_decay=None, ema=None):
    """SGD with momentum (``nesterov``: Nesterov's), Adam or RMSprop; ``weight_decay`` is Keras's decoupled weight
    decay, ``ema`` the momentum of Keras's moving average of the weights (use with :class:`EMAWeights`)."""
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if not (isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) or learning_rate > 0):
        raise InputError(f"learning rate must be positive, got {learning_rate}")
    common = dict(learning_rate=learning_rate, weight_decay=weight_decay or None)
    if ema is not None:
        common.update(use_ema=True, ema_momentum=ema)
    if name in ("sgd", "nesterov"):
        return keras.optimizers.SGD(momentum=momentum, nesterov=name == "nesterov", **common)
    if name == "adam":
        return keras.optimizers.Adam(**common)
    return keras.optimizers.RMSprop(**common)


ONECYCLE = {"start": 0.2, "peak_at": 0.23, "end": 0.07}  # airbench's triangle: from 0.2x, peak at 23%, to 0.07x


def learning_rate_schedule(schedule, learning_rate, epochs, steps_per_epoch, drops=(0.5, 0.75), factor=0.1,
                           patience=5):
    """Return ``(learning_rate_for_optimizer, callbacks)`` for one of SCHEDULES.

    ``step``: multiply by ``factor`` at each fraction ``drops`` of the run (by
    default half and three quarters, the classic CIFAR/ResNet schedule), as
    Keras's PiecewiseConstantDecay over the optimiser's steps; ``plateau``: ReduceLROnPlateau on the validation
    loss; ``cosine``: keras.optimizers.schedules.CosineDecay over the run; ``onecycle``: the same CosineDecay
    with its linear warm-up, from ``ONECYCLE["start"]`` times the rate up to the rate over the first
    ``peak_at`` of the steps, then down to ``end`` times it; ``triangle``: airbench's, the same three points
    joined by straight lines (:class:`~keras_apml.custom_objects.Triangle`).
    """
    if schedule == "constant":
        return learning_rate, []
    if schedule == "step":
        # the rate drops at the first step of epoch round(fraction * epochs): the step after boundary b*S - 1
        boundaries = [round(fraction * epochs) * steps_per_epoch - 1 for fraction in drops]
        values = [learning_rate * factor ** k for k in range(len(drops) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values), []
    if schedule == "plateau":
        return learning_rate, [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=factor, patience=patience, min_lr=1e-7)
        ]
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps_per_epoch)), []
    if schedule == "onecycle":
        total = max(2, epochs * steps_per_epoch)
        warmup = min(total - 1, max(1, round(ONECYCLE["peak_at"] * total)))
        return keras.optimizers.schedules.CosineDecay(
            ONECYCLE["start"] * learning_rate, decay_steps=total - warmup, alpha=ONECYCLE["end"],
            warmup_target=learning_rate, warmup_steps=warmup), []
    if schedule == "triangle":
        return Triangle(learning_rate, max(2, epochs * steps_per_epoch), **ONECYCLE), []
    raise InputError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")


def compile_model(model, optimizer, jit_compile=False, steps_per_execution=1, label_smoothing=0.0):
    """Compile for integer labels: sparse categorical cross-entropy (smoothed if asked) and accuracy.

    ``steps_per_execution`` > 1 runs that many batches per call into the
    compiled train function: for a small model (a head on cached features)
    the per-step Python and dispatch overhead is a large part of an epoch.
    """
    loss = SmoothedSparseCrossentropy(label_smoothing) if label_smoothing else \
        keras.losses.SparseCategoricalCrossentropy()
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=["accuracy"],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


class Lookahead(keras.callbacks.Callback):
    """airbench's lookahead: from epoch ``start_epoch`` (counted from 0) on, every ``every`` steps the weights
    (BatchNorm's moving statistics too) are averaged into a copy, ``average = a * average + (1 - a) * weights``
    with ``a = decay ** every * (step / total_steps) ** 3``, and training goes on from the average; each epoch
    ends on the average.

    The average is a copy of the weights at the first step of ``start_epoch``
    or later that is a multiple of ``every``, as airbench94's: a run of
    ``start_epoch`` epochs or fewer is not averaged.
    """

    def __init__(self, total_steps, decay=0.95, every=5, start_epoch=3):
        super().__init__()
        self.total_steps, self.decay, self.every = int(total_steps), float(decay), int(every)
        self.start_epoch, self.epoch, self.average = int(start_epoch), 0, None

    def _weights(self):
        return [w for w in self.model.weights if keras.backend.standardize_dtype(w.dtype).startswith("float")]

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def update(self, rate):
        """Average the weights into the copy with ``rate`` (the copy's share) and set the weights to it."""
        for average, weight in zip(self.average, self._weights()):
            average *= rate
            average += (1.0 - rate) * keras.ops.convert_to_numpy(weight)
            weight.assign(average)

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.epoch < self.start_epoch or step % self.every:
            return
        if self.average is None:
            self.average = [keras.ops.convert_to_numpy(w).copy() for w in self._weights()]
        else:
            self.update(self.decay ** self.every * min(step / self.total_steps, 1.0) ** 3)

    def on_epoch_end(self, epoch, logs=None):
        if self.average is not None:
            self.update(1.0)


class TrainFor(keras.callbacks.Callback):
    """Train ``variable`` for the first ``epochs`` epochs of the run, then freeze it (airbench's whitening bias);
    the train function is traced again once, when it is frozen."""

    def __init__(self, variable, epochs):
        super().__init__()
        self.variable, self.epochs = variable, int(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        trainable = epoch < self.epochs
        if trainable != self.variable.trainable:
            self.variable.trainable = trainable
            self.model.make_train_function(force=True)
