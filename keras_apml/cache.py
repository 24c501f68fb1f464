"""The on-disk cache of decoded images and model outputs: .npz files that heal.

Each entry carries the SHA-256 of its arrays and a line saying what it
holds. An entry that is corrupt, truncated, empty or whose arrays no longer
match their hash is treated as missing (and rebuilt by the caller); a cache
directory that cannot be written is bypassed with one warning line on
stderr. ``python -m experiments.cache`` lists and clears the entries;
``--no-cache`` runs without them (:func:`set_enabled`).
"""

import datetime
import hashlib
import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

from keras_apml import atomic
from keras_apml.errors import InputError

CACHE_ENV = "KERAS_APML_CACHE"
HASH_KEY, ABOUT_KEY = "__sha256__", "__about__"
# What this package writes there, by the names it gives: decoded image trees and model outputs ("features"),
# named by a hash; a leading dot and tempfile's random part mark a write that never finished (a killed process).
# A file of another name (a user's own images-holiday.npz) is not the cache's, and is never listed or removed.
KINDS = {"images": re.compile(r"(cifar10|images)-[0-9a-f]{20}\.npz"),
         "features": re.compile(r"features-[0-9a-f]{24}\.npz")}
_warned = set()
_enabled = True


def set_enabled(on):
    """Use the cache (the default), or neither read nor write it (``--no-cache``)."""
    global _enabled
    _enabled = bool(on)


def is_enabled():
    """Whether the cache is read and written."""
    return _enabled


def cache_dir():
    """The directory for cached arrays: $KERAS_APML_CACHE or the user's cache dir."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras_apml"


def arrays_sha256(arrays):
    """The SHA-256 of named arrays' names, shapes, dtypes and bytes (of images streamed from files: their paths,
    sizes and modification times)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        if hasattr(arrays[name], "files"):  # images left in their files: their paths, sizes and times stand for them
            for path in arrays[name].files():
                stat = os.stat(path)
                digest.update(f"{name}{path}{stat.st_size}{stat.st_mtime_ns}".encode())
            continue
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{a.shape}{a.dtype}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def load(name):
    """The arrays cached as ``name``, or None when the entry is missing or fails its hash check."""
    if not _enabled:
        return None
    path = cache_dir() / name
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile):
        return None  # corrupt, truncated, empty or unreadable: rebuilt by the caller
    arrays.pop(ABOUT_KEY, None)
    stored = arrays.pop(HASH_KEY, None)
    if stored is None or str(stored) != arrays_sha256(arrays):
        return None
    return arrays


def save(name, arrays, about):
    """Cache ``arrays`` as ``name`` with their hash and ``about`` (what they are, for the listing); a directory that
    cannot be written is skipped with a warning."""
    if not _enabled:
        return
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(directory / name) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays, **{HASH_KEY: np.array(arrays_sha256(arrays)), ABOUT_KEY: np.array(about)})
    except OSError as e:
        if directory not in _warned:
            _warned.add(directory)
            print(f"warning: cache directory {directory} cannot be written ({e.strerror or e}); "
                  f"going on without the cache (set {CACHE_ENV} to another directory)", file=sys.stderr)


def entries(kinds=tuple(KINDS)):
    """The cache's files of ``kinds``, oldest first: ``[{"path", "kind", "bytes", "modified", "about"}]``.

    ``about`` says what an entry holds (from the entry itself), or why it
    cannot: an unfinished write, or a file that does not open.
    """
    directory = cache_dir()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"the cache directory {directory} is not a directory (set {CACHE_ENV} to a directory)")
    found = []
    for path in directory.iterdir() if directory.is_dir() else ():
        unfinished = atomic.leftover(path.name)  # the name it was to have, for a write a killed process left
        kind = next((k for k in kinds if KINDS[k].fullmatch(unfinished or path.name)), None)
        if kind is None:
            continue  # not a name the cache gives
        try:
            stat = path.stat()
        except OSError:
            continue  # removed meanwhile
        found.append({"path": path, "kind": kind, "bytes": stat.st_size,
                      "modified": datetime.datetime.fromtimestamp(stat.st_mtime),
                      "about": "an unfinished write (a stopped process)" if unfinished else _about(path)})
    return sorted(found, key=lambda e: e["modified"])


def _about(path):
    """An entry's own description, read without loading its arrays."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return str(f[ABOUT_KEY]) if ABOUT_KEY in f.files else "(written before entries described themselves)"
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return "damaged: rebuilt when next needed"


def clear(kinds=tuple(KINDS)):
    """Delete the cache's files of ``kinds`` (nothing else in the directory); returns the entries deleted."""
    removed = []
    for entry in entries(kinds):
        try:
            entry["path"].unlink()
        except FileNotFoundError:
            continue
        removed.append(entry)
    return removed
