"""Atomic file writes: write to a temporary file beside the target, then rename."""

import contextlib
import functools
import json
import os
import re
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the full suffix (".weights.h5", not ".h5"): Keras picks the format from it
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix="".join(path.suffixes))
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file follows the user's umask
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_LEFTOVER = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}(?P<suffix>(\.[^.]+)*)")  # mkstemp's name in atomic_path


def leftover(name):
    """The name of the file a temporary file named ``name`` was to become, when it is one :func:`atomic_path`
    made and a killed process left behind; else None."""
    match = _LEFTOVER.fullmatch(name)
    return match["target"] if match and match["target"].endswith(match["suffix"]) else None


@functools.cache
def _umask():
    """The process's umask, read once (from /proc where there is one: setting it to read it races with threads)."""
    try:
        with open("/proc/self/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj):
    """Write ``obj`` as indented JSON atomically; NaN and infinity are refused, not written. Returns the text."""
    text = json.dumps(obj, indent=2, allow_nan=False, default=_to_builtin) + "\n"
    write_text(path, text)
    return text


def _to_builtin(obj):
    """Turn numpy scalars and arrays into JSON-ready Python values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
