"""The on-disk cache of decoded images and model outputs: .npz files that heal.

Each entry carries the SHA-256 of its arrays. An entry that is corrupt,
truncated, empty or whose arrays no longer match their hash is treated as
missing (and rebuilt by the caller); a cache directory that cannot be
written is bypassed with one warning line on stderr.
"""

import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from keras_apml import atomic

CACHE_ENV = "KERAS_APML_CACHE"
HASH_KEY = "__sha256__"
_warned = set()


def cache_dir():
    """The directory for cached arrays: $KERAS_APML_CACHE or the user's cache dir."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras_apml"


def arrays_sha256(arrays):
    """The SHA-256 of named arrays' names, shapes, dtypes and bytes."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{a.shape}{a.dtype}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def load(name):
    """The arrays cached as ``name``, or None when the entry is missing or fails its hash check."""
    path = cache_dir() / name
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile):
        return None  # corrupt, truncated, empty or unreadable: rebuilt by the caller
    stored = arrays.pop(HASH_KEY, None)
    if stored is None or str(stored) != arrays_sha256(arrays):
        return None
    return arrays


def save(name, arrays):
    """Cache ``arrays`` as ``name`` with their hash; a directory that cannot be written is skipped with a warning."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(directory / name) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays, **{HASH_KEY: np.array(arrays_sha256(arrays))})
    except OSError as e:
        if directory not in _warned:
            _warned.add(directory)
            print(f"warning: cache directory {directory} cannot be written ({e.strerror or e}); "
                  f"going on without the cache (set {CACHE_ENV} to another directory)", file=sys.stderr)

