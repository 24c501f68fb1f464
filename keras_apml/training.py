"""Training through ``model.fit`` with Keras's own optimisers, schedules and callbacks."""

import csv
import dataclasses
import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_apml import atomic
from keras_apml.errors import InputError
from keras_apml.recipe import DISTRIBUTE, OPTIMIZERS, SCHEDULES


def set_seed(seed):
    """Seed Python, NumPy and the backend (``keras.utils.set_random_seed``)."""
    keras.utils.set_random_seed(int(seed))


def distribution_strategy(kind="none"):
    """A tf.distribute strategy: the default one or MirroredStrategy.

    ``mirrored`` replicates over all local GPUs, or over the logical CPU
    devices where there is no GPU; ``multiworker`` is refused while Keras 3
    cannot train under it.
    Build and compile models inside ``strategy.scope()``.
    """
    import tensorflow as tf

    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind == "multiworker":  # tests/test_training.py checks that Keras still fails, and tells when it no longer does
        raise InputError("--distribute multiworker: Keras 3 cannot train under MultiWorkerMirroredStrategy yet "
                         "(model.fit fails reducing its first batch across workers: keras-team/keras#20585); use "
                         "--distribute mirrored on one machine")
    raise InputError(f"unknown distribution {kind!r}; choose from {', '.join(DISTRIBUTE)}")


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
    ``peak_at`` of the steps, then down to ``end`` times it.
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
    raise InputError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")


@keras.saving.register_keras_serializable(package="keras_apml")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Keras's categorical cross-entropy with ``label_smoothing``, for integer labels (Keras's sparse loss has no
    smoothing): the labels are one-hot encoded, then ``keras.losses.categorical_crossentropy`` scores them."""

    def __init__(self, label_smoothing=0.0, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


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


class EMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras's ``SwapEMAWeights(swap_on_epoch=True)`` for an optimiser with ``use_ema``: validation and every callback
    after it at an epoch's end (the balanced accuracy, :class:`BestEpoch`, the backup) see the averaged weights.

    Put it first. The backup is written with the two swapped, so a run
    resumed from one swaps them back before it trains on.
    """

    def __init__(self):
        super().__init__(swap_on_epoch=True)

    def on_train_begin(self, logs=None):
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch and epoch > 0:  # resumed: the restored backup holds the two swapped
            self._ema_weights_in_model = True
        self._first_epoch = False
        super().on_epoch_begin(epoch, logs)


def run_callbacks(run_dir, early_stopping=None, keep_best=False, tag=None, announce=print, tensorboard=False):
    """Callbacks for a run kept in ``run_dir``: its resumable backup and history, and the best epoch's weights.

    :class:`ResumableHistory` keeps the backup under ``backup[_tag]/`` and the
    history in ``history[_tag].csv``, so that an interrupted run, started again
    with the same ``--out``, resumes where it stopped with its whole history.
    ``keep_best`` (a run with a validation set) ends the run with the weights of
    its best validation epoch (:class:`BestEpoch`); ``early_stopping`` (a
    patience in epochs) also stops it once that many epochs bring no
    improvement. ``tensorboard`` adds Keras's TensorBoard logs under
    ``tensorboard/<tag>/``. ``tag`` names the files of one run among several.
    """
    run_dir = Path(run_dir)
    suffix = f"_{tag}" if tag else ""
    history = ResumableHistory(run_dir / f"backup{suffix}", run_dir / f"history{suffix}.csv",
                               name=tag or "training", announce=announce)
    callbacks = [history]
    if keep_best or early_stopping:
        callbacks.append(BestEpoch(history, patience=early_stopping))
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard" / (tag or "training"))))
    return callbacks


def remove_backup(run_dir, tag=None):
    """Delete a finished run's backup (once its results are recorded)."""
    shutil.rmtree(Path(run_dir) / f"backup{'_' + tag if tag else ''}", ignore_errors=True)


class ResumableHistory(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, written so that no crash or full disk can leave a backup that loads half-written,
    with the run's history (``CSVLogger``) and epoch times kept in step with it.

    Each epoch's weights (and optimiser state) go to a temporary file renamed
    to ``epoch-NNNNNN.weights.h5`` once complete; the newest two are kept. At
    the start, the newest that loads is restored; one that does not is set
    aside as ``*.bad`` with a warning and the one before it (or a fresh start)
    is taken. The history file is cut back to the restored epochs, so that a
    redone epoch is never logged twice, and every row carries
    ``epoch_seconds``: the run's timing survives a resume.
    """

    def __init__(self, backup_dir, history_file, name="training", announce=print):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
        self.backup_path, self.history_file, self.name, self.announce = Path(backup_dir), Path(history_file), name, \
            announce
        self.csv_logger = keras.callbacks.CSVLogger(str(history_file), append=True)
        self.restored_epoch = 0

    def set_model(self, model):
        super().set_model(model)
        self.csv_logger.set_model(model)

    def _checkpoints(self):
        """``[(epoch, path)]`` of the backups, newest first."""
        found = []
        for path in self.backup_path.glob("epoch-*.weights.h5"):
            number = path.name[len("epoch-"):-len(".weights.h5")]
            if number.isdigit():
                found.append((int(number), path))
        return sorted(found, reverse=True)

    def on_train_begin(self, logs=None):
        self.restored_epoch = 0
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        for epoch, path in self._checkpoints():
            try:
                self.model.load_weights(str(path))
            except Exception as e:  # noqa: BLE001 - h5py and Keras raise many kinds for a damaged file
                os.replace(path, path.with_name(path.name + ".bad"))
                print(f"warning: backup {path} does not load ({type(e).__name__}); set aside as {path.name}.bad",
                      file=sys.stderr)
                continue
            self.restored_epoch = self.model._initial_epoch = epoch
            self.announce(f"{self.name}: resuming from its backup after epoch {epoch}")
            break
        self._trim_history(self.restored_epoch)
        self.csv_logger.on_train_begin(logs)

    def _trim_history(self, epochs):
        """Keep the history's rows of the first ``epochs`` epochs only (none: no file)."""
        if not self.history_file.is_file():
            return
        with open(self.history_file, newline="") as f:
            rows = list(csv.reader(f))
        kept = [row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < epochs]
        if not kept:
            self.history_file.unlink()
            return
        with atomic.atomic_path(self.history_file) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([rows[0], *kept])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start  # into the history file only, not the progress line
        self.csv_logger.on_epoch_end(epoch, {**(logs or {}), "epoch_seconds": seconds})
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        self.csv_logger.on_train_end(logs)

    def _save_model(self):
        self.backup_path.mkdir(parents=True, exist_ok=True)
        path = self.backup_path / f"epoch-{self._current_epoch:06d}.weights.h5"
        with atomic.atomic_path(path) as tmp:
            try:
                self.model.save_weights(str(tmp), overwrite=True)
            except OSError:
                raise
            except Exception as e:  # noqa: BLE001 - h5py reports a failed write (a full disk) in many ways
                raise OSError(f"cannot write the training backup {path} ({type(e).__name__}: {e})") from None
        for _, older in self._checkpoints()[2:]:
            older.unlink(missing_ok=True)


class BestEpoch(keras.callbacks.EarlyStopping):
    """Keras's ``EarlyStopping(restore_best_weights=True)`` on validation balanced accuracy, whose best weights
    outlive an interruption: the run ends with the weights of its best epoch over all the calls that trained it.

    Each new best is also written (atomically) beside the
    :class:`ResumableHistory` backup it goes with; when that run resumes, the
    best epoch so far is read from its history and its weights from that file
    (or from the restored backup, when the best epoch is the one it restored).
    Without ``patience`` the run is never stopped early.
    """

    MONITOR = "val_balanced_accuracy"

    def __init__(self, resumable, patience=None):
        super().__init__(monitor=self.MONITOR, mode="max", patience=patience or 2 ** 62, restore_best_weights=True)
        self.resumable = resumable

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        restored = self.resumable.restored_epoch
        if not restored or not self.resumable.history_file.is_file():
            return
        values = read_history(self.resumable.history_file).get(self.monitor, [])
        finite = [(v, -epoch) for epoch, v in enumerate(values) if math.isfinite(v)]
        if not finite:
            return
        value, epoch = max(finite)  # the first of equal values, as EarlyStopping keeps
        epoch = -epoch
        if epoch + 1 == restored:
            weights = self.model.get_weights()
        else:
            weights = self._load(epoch)
            if weights is None:
                print(f"warning: {self.resumable.name}: the weights of its best epoch so far ({epoch + 1}) are "
                      "missing or damaged; the best epoch is chosen among the epochs trained from now on",
                      file=sys.stderr)
                return
        self.best, self.best_epoch, self.best_weights = value, epoch, weights
        self.wait = restored - 1 - epoch

    def on_epoch_end(self, epoch, logs=None):
        before = (self.best_epoch, self.best)
        super().on_epoch_end(epoch, logs)
        if (self.best_epoch, self.best) != before and self.best_epoch == epoch:
            self._save(epoch)

    def _path(self, epoch):
        return self.resumable.backup_path / f"best-epoch-{epoch + 1:06d}.npz"

    def _save(self, epoch):
        """Write the best weights (as of ``epoch``, 0-based) and drop the earlier best's file."""
        path = self._path(epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, *self.best_weights)
        for older in path.parent.glob("best-epoch-*.npz"):
            if older != path:
                older.unlink(missing_ok=True)

    def _load(self, epoch):
        """The weights written for ``epoch`` (0-based), or None when that file is missing or does not load."""
        import zipfile

        try:
            with np.load(self._path(epoch), allow_pickle=False) as f:
                weights = [f[f"arr_{i}"] for i in range(len(f.files))]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            return None
        expected = [tuple(w.shape) for w in self.model.get_weights()]
        return weights if [w.shape for w in weights] == expected else None

    @property
    def kept_epoch(self):
        """The 1-based epoch whose weights the model ends with, or None before any was scored."""
        return None if self.best is None else self.best_epoch + 1


def read_history(path):
    """A CSVLogger file as ``{metric: [value per epoch]}``, one row per epoch (the last where one repeats)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_epoch = {int(row["epoch"]): row for row in rows if row.get("epoch", "").isdigit()}
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [_float(by_epoch[e].get(k)) for e in sorted(by_epoch)] for k in keys}


def _float(text):
    """A logged value; CSVLogger's "NA" (a metric missing that epoch) and anything unreadable are NaN."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


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


def fit(model, train_data, *, epochs, validation_data=None, steps_per_epoch=None, class_weight=None,
        callbacks=(), verbose=1):
    """``model.fit`` plus divergence detection: the first epoch whose loss is NaN or infinite.

    TerminateOnNaN (always on) ends the run inside that epoch, whose NaN mean
    loss still reaches the history. With a :class:`ResumableHistory` among the callbacks
    the history and timing are the whole run's, epochs of earlier calls included;
    with a :class:`BestEpoch`, the result names the epoch whose weights were kept.
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
    resumable = next((c for c in callbacks if isinstance(c, ResumableHistory)), None)
    resumed_from = 0
    if resumable is not None and resumable.history_file.is_file():
        logs, resumed_from = read_history(resumable.history_file), resumable.restored_epoch
        seconds = sum(v for v in logs.get("epoch_seconds", []) if math.isfinite(v))
    logs.pop("epoch_seconds", None)
    losses = logs.get("loss", [])
    diverged = next((i + 1 for i, v in enumerate(losses) if not math.isfinite(v)), None)
    epochs_run = len(losses) if diverged is None else diverged
    best = next((c for c in callbacks if isinstance(c, BestEpoch)), None)
    return TrainResult(logs, epochs_run, diverged, seconds, resumed_from, best and best.kept_epoch)
