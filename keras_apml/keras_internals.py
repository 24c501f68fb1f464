"""Every private Keras name keras_apml relies on, in one place, each with why.

Keras 3 gives no public way to do these five things. They were read in the
Keras versions pinned in requirements.txt, and ``pyproject.toml`` bounds
``keras`` to the minor versions tested; the resume and EMA tests of
``tests/test_training.py`` exercise each one, so a Keras release that renames
one fails there first.
"""


def start_from_epoch(model, epoch):
    """Make the next ``model.fit`` start at ``epoch``: what Keras's own BackupAndRestore does after a restore
    (``model._initial_epoch``, read by the TensorFlow trainer's ``fit``)."""
    model._initial_epoch = epoch


def _backup_epoch(callback):
    """The number of epochs a BackupAndRestore callback has seen end (``_current_epoch``): its backup's name."""
    return callback._current_epoch


def mark_ema_swapped(callback):
    """Tell a SwapEMAWeights callback that the model already holds the averaged weights
    (``_ema_weights_in_model``): true of a backup restored mid-run, written with the two swapped."""
    callback._ema_weights_in_model = True


class BackupWriter:
    """A mixin for ``keras.callbacks.BackupAndRestore`` that hands its backup writing to ``write_backup(epoch)``.

    BackupAndRestore writes through its private ``_save_model()``, with no
    public hook; put this class first among the bases.
    """

    def _save_model(self):
        self.write_backup(_backup_epoch(self))


def weights_h5_bytes(model):
    """The bytes of the ``.weights.h5`` file ``model.save_weights`` would write, made in memory
    (``saving_lib.H5IOStore`` on an ``io.BytesIO`` and ``saving_lib._save_state``, as ``save_weights`` does on a
    path): written to disk with plain file I/O, a full disk is an OSError, not an HDF5 file left open whose
    clean-up at exit crashes the process."""
    import io

    from keras.src.saving import saving_lib

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
    store.close()
    return buffer.getvalue()
