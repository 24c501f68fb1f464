"""Named arrays in .npz files, written atomically and read without pickles."""

import zipfile
from pathlib import Path

import numpy as np

from keras_apml.atomic import atomic_path
from keras_apml.errors import InputError


def save_arrays(path, **arrays):
    """Save named arrays to an .npz file atomically, without pickles."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    if any(a.dtype == object for a in arrays.values()):
        raise ValueError("object arrays would need pickle; save plain numeric or string arrays")
    with atomic_path(Path(path).with_suffix(".npz")) as tmp:
        np.savez(tmp, **arrays)


def load_arrays(path):
    """Load every array of an .npz file with ``allow_pickle=False``."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:  # truncated: BadZipFile
        raise InputError(f"{path}: corrupt or unsafe .npz ({type(e).__name__}: {e})") from None
