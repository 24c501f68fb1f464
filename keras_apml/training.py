"""Training through ``model.fit`` with Keras's own optimisers, schedules and callbacks."""

import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import keras

from keras_apml.errors import InputError

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "plateau", "cosine")
STRATEGIES = ("none", "mirrored", "multiworker")


def set_seed(seed):
    """Seed Python, NumPy and the backend (``keras.utils.set_random_seed``)."""
    keras.utils.set_random_seed(int(seed))


def distribution_strategy(kind="none"):
    """A tf.distribute strategy: the default one, MirroredStrategy or MultiWorkerMirroredStrategy.

    ``mirrored`` replicates over all local GPUs, or over the logical CPU
    devices where there is no GPU; ``multiworker`` needs ``TF_CONFIG``.
    Build and compile models inside ``strategy.scope()``.
    """
    import tensorflow as tf

    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise InputError("--distribute multiworker needs TF_CONFIG describing the cluster and this worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise InputError(f"unknown strategy {kind!r}; choose from {', '.join(STRATEGIES)}")


def gpu_options(mixed_precision=False, jit=False):
    """Turn on mixed_float16 and XLA where a GPU is present; return what is in effect.

    On a CPU both stay off (mixed float16 is slower there) and a note says so.
    """
    import tensorflow as tf

    wanted = {"mixed_precision": bool(mixed_precision), "jit": bool(jit)}
    if not tf.config.list_physical_devices("GPU"):
        for flag, on in wanted.items():
            if on:
                print(f"note: --{flag.replace('_', '-')} needs a GPU; it stays off on this CPU", file=sys.stderr)
        return {"mixed_precision": False, "jit": False}
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    return wanted


def make_optimizer(name="adam", learning_rate=1e-3, momentum=0.9, weight_decay=None):
    """SGD with momentum, Adam or RMSprop; ``weight_decay`` is Keras's decoupled weight decay."""
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if not (isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) or learning_rate > 0):
        raise InputError(f"learning rate must be positive, got {learning_rate}")
    common = dict(learning_rate=learning_rate, weight_decay=weight_decay or None)
    if name == "sgd":
        return keras.optimizers.SGD(momentum=momentum, **common)
    if name == "adam":
        return keras.optimizers.Adam(**common)
    return keras.optimizers.RMSprop(**common)


def learning_rate_schedule(schedule, learning_rate, epochs, steps_per_epoch, drops=(0.5, 0.75), factor=0.1,
                           patience=5):
    """Return ``(learning_rate_for_optimizer, callbacks)`` for one of SCHEDULES.

    ``step``: multiply by ``factor`` at each fraction ``drops`` of the run (by
    default half and three quarters, the classic CIFAR/ResNet schedule), via
    LearningRateScheduler; ``plateau``: ReduceLROnPlateau on the validation
    loss; ``cosine``: keras.optimizers.schedules.CosineDecay over the run.
    """
    if schedule == "constant":
        return learning_rate, []
    if schedule == "step":
        boundaries = [round(fraction * epochs) for fraction in drops]
        return learning_rate, [
            keras.callbacks.LearningRateScheduler(
                lambda epoch: learning_rate * factor ** sum(epoch >= b for b in boundaries))
        ]
    if schedule == "plateau":
        return learning_rate, [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=factor, patience=patience, min_lr=1e-7)
        ]
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps_per_epoch)), []
    raise InputError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")


def compile_model(model, optimizer, jit_compile=False, steps_per_execution=1):
    """Compile for integer labels: sparse categorical cross-entropy and accuracy.

    ``steps_per_execution`` > 1 runs that many batches per call into the
    compiled train function: for a small model (a head on cached features)
    the per-step Python and dispatch overhead is a large part of an epoch.
    """
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def run_callbacks(run_dir, early_stopping=None, backup=True, save_best=False, tag=None):
    """Callbacks for a run: TerminateOnNaN, CSVLogger, BackupAndRestore; EarlyStopping, ModelCheckpoint on request.

    BackupAndRestore keeps its state under ``run_dir/backup`` so that an
    interrupted run, started again with the same ``--out``, resumes where it
    stopped. ``save_best`` keeps the model of lowest validation loss as
    ``best.keras``. ``tag`` names the files of one run among several
    (``history_<tag>.csv``, ``backup_<tag>``, ``best_<tag>.keras``).
    """
    run_dir = Path(run_dir)
    suffix = f"_{tag}" if tag else ""
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(run_dir / f"history{suffix}.csv"), append=backup),
    ]
    if backup:
        callbacks.append(keras.callbacks.BackupAndRestore(str(run_dir / f"backup{suffix}")))
    if save_best:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(run_dir / f"best{suffix}.keras"), monitor="val_loss",
                                                         save_best_only=True))
    if early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping, restore_best_weights=True)
        )
    return callbacks


@dataclasses.dataclass
class TrainResult:
    """What a training run did: its per-epoch history, whether it diverged, its wall time."""

    history: dict
    epochs_run: int
    diverged_epoch: int | None
    seconds: float

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
            "history": {k: [v if math.isfinite(v) else None for v in vals] for k, vals in self.history.items()},
        }

    def timing(self):
        """Wall time of the fit, in total and per epoch."""
        return {"fit_seconds": round(self.seconds, 3),
                "seconds_per_epoch": round(self.seconds / max(1, self.epochs_run), 3)}


def fit(model, train_data, *, epochs, validation_data=None, steps_per_epoch=None, class_weight=None,
        callbacks=(), verbose=1):
    """``model.fit`` plus divergence detection: the first epoch whose loss is NaN or infinite.

    TerminateOnNaN (in :func:`run_callbacks`) ends the run inside that epoch,
    whose NaN mean loss still reaches the history.
    """
    start = time.perf_counter()
    history = model.fit(
        train_data,
        epochs=epochs,
        validation_data=validation_data,
        steps_per_epoch=steps_per_epoch,
        class_weight=class_weight,
        shuffle=False,  # the tf.data pipeline shuffles
        callbacks=list(callbacks),
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    logs = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    losses = logs.get("loss", [])
    diverged = next((i + 1 for i, v in enumerate(losses) if not math.isfinite(v)), None)
    epochs_run = len(losses) if diverged is None else diverged
    return TrainResult(logs, epochs_run, diverged, seconds)

