"""A training that outlives an interruption: its backup and history, its best epoch, its swapped EMA weights."""

import csv
import math
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
import numpy as np

from keras_apml import atomic, keras_internals


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
            keras_internals.mark_ema_swapped(self)
        self._first_epoch = False
        super().on_epoch_begin(epoch, logs)


def run_callbacks(run_dir, early_stopping=None, keep_best=False, tag=None, announce=print, tensorboard=False,
                  on_epoch=None):
    """Callbacks for a run kept in ``run_dir``: its resumable backup and history, and the best epoch's weights.

    :class:`ResumableHistory` keeps the backup under ``backup[_tag]/`` and the
    history in ``history[_tag].csv``, so that an interrupted run, started again
    with the same ``--out``, resumes where it stopped with its whole history.
    ``keep_best`` (a run with a validation set) ends the run with the weights of
    its best validation epoch (:class:`BestEpoch`); ``early_stopping`` (a
    patience in epochs) also stops it once that many epochs bring no
    improvement. ``tensorboard`` adds Keras's TensorBoard logs under
    ``tensorboard/<tag>/``. ``tag`` names the files of one run among several. ``on_epoch(epoch)`` is called as
    each epoch ends (counted from 1, epochs of an earlier call included), after the backup is written.
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
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1)))
    return callbacks


def remove_backup(run_dir, tag=None):
    """Delete a finished run's backup (once its results are recorded)."""
    shutil.rmtree(Path(run_dir) / f"backup{'_' + tag if tag else ''}", ignore_errors=True)


class ResumableHistory(keras_internals.BackupWriter, keras.callbacks.BackupAndRestore):
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
            self.restored_epoch = epoch
            keras_internals.start_from_epoch(self.model, epoch)
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

    def write_backup(self, epoch):
        """Write the weights (and optimiser state) after ``epoch`` epochs, atomically; keep the newest two."""
        self.backup_path.mkdir(parents=True, exist_ok=True)
        path = self.backup_path / f"epoch-{epoch:06d}.weights.h5"
        weights = keras_internals.weights_h5_bytes(self.model)  # in memory: HDF5 never meets a full disk
        try:
            with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
                f.write(weights)
        except OSError as e:  # a full disk, a file-size limit: said with the backup's name
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
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
    """A CSVLogger file as ``{metric: [value per epoch]}``, one row per epoch (the last where one repeats).

    A ``val_`` column with no value at all is left out: CSVLogger writes one
    for every metric of a run that has no validation data.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_epoch = {int(row["epoch"]): row for row in rows if row.get("epoch", "").isdigit()}
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    history = {k: [_float(by_epoch[e].get(k)) for e in sorted(by_epoch)] for k in keys}
    return {k: values for k, values in history.items()
            if not (k.startswith("val_") and all(math.isnan(v) for v in values))}


def _float(text):
    """A logged value; CSVLogger's "NA" (a metric missing that epoch) and anything unreadable are NaN."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
