"""Label files: a CSV reader for relabel and truth files, and the relabel list a review applies."""

import csv
import hashlib
from pathlib import Path

import numpy as np

from keras_apml.atomic import atomic_path
from keras_apml.errors import InputError


def read_csv(path, what, header):
    """``(text, rows)`` of a UTF-8 CSV file: blank and ``#`` rows left out, a first row equal to ``header`` too;
    a file that cannot be read or decoded is one InputError naming it as ``what``."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {e.start})") from None
    rows = [row for row in csv.reader(text.splitlines()) if row and not row[0].startswith("#")]
    if rows and tuple(c.strip().lower() for c in rows[0][:len(header)]) == tuple(header):
        rows = rows[1:]
    return text, rows


DROP, DROPPED = "drop", -1  # a relabel file's label that leaves the image out of training, and its new label


def apply_relabel_file(y, path, class_names, paths=None):
    """Apply a CSV relabel file to labels ``y``; return the new labels and a record.

    Its rows are ``index,label`` (the benchmark's and CIFAR-10's training
    images) or, for images that have ``paths`` (your own folders), ``path,label``
    with the path relative to the dataset's root, as the studies write them. A
    label of ``drop`` (where no class has that name) leaves the image out of
    training: its new label is ``DROPPED`` (-1).
    """
    path = Path(path)
    key = "index" if paths is None else "path"
    text, rows = read_csv(path, "relabel file", (key, "label"))
    where = None if paths is None else {p: i for i, p in enumerate(paths)}
    y_new = np.array(y, copy=True)
    seen = {}
    for line, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise InputError(f"{path}: row {line} should be '{key},label'")
        item, label = row[0].strip(), row[1].strip()
        if where is not None:
            if item not in where:
                raise InputError(f"{path}: row {line}: {item[:200]!r} is not one of the training images' paths")
            index = where[item]
        elif not _is_number(item) or int(item) >= len(y_new):
            raise InputError(f"{path}: row {line}: index {item[:40]!r} is not in 0..{len(y_new) - 1}")
        else:
            index = int(item)
        if index in seen:
            raise InputError(f"{path}: rows {seen[index]} and {line} both relabel {key} {item[:200]}")
        seen[index] = line
        if label in class_names:
            label = class_names.index(label)
        elif _is_number(label) and int(label) < len(class_names):
            label = int(label)
        elif label == DROP:
            label = DROPPED
        else:
            raise InputError(f"{path}: row {line}: label {label[:40]!r} is not one of {list(class_names)} or {DROP!r}")
        y_new[index] = label
    record = {
        "relabel_file": str(path.resolve()),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "rows": len(rows),
        "labels_changed": int(np.sum((y_new != np.asarray(y)) & (y_new != DROPPED))),
        "dropped": int(np.sum(y_new == DROPPED)),
    }
    return y_new, record


def _is_number(text):
    """Whether ``text`` is a plain decimal integer (ASCII digits only: not '²' or '٣')."""
    return text.isascii() and text.isdigit() and len(text) < 19


def write_relabel_file(path, indices, labels, class_names, paths=None):
    """Write a CSV relabel file that apply_relabel_file reads: ``index,label`` with class names (``drop`` for a
    label of ``DROPPED``), or ``path,label`` naming each image by its path (your own folders: a file a person can
    open)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index" if paths is None else "path", "label"])
        writer.writerows((int(i) if paths is None else paths[int(i)],
                          DROP if label == DROPPED else class_names[int(label)]) for i, label in zip(indices, labels))
