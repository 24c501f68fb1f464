"""Label files: a CSV reader for relabel and truth files, and the relabel list a review applies."""

import codecs
import csv
import hashlib
import json
import stat
from pathlib import Path, PurePath

import numpy as np

from keras_apml.atomic import atomic_path
from keras_apml.errors import InputError


MAX_BYTES = 256 * 2 ** 20  # a label file of a million images takes a few tens of MB


def read_text(path, what, limit=MAX_BYTES):
    """The UTF-8 text of ``path``, a regular file of at most ``limit`` bytes; anything else (a directory, a FIFO, a
    device such as /dev/zero, a larger file, other bytes) is one InputError naming it as ``what``."""
    path = Path(path).expanduser()
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{what} {path} is not a regular file")
        if info.st_size > limit:
            raise InputError(f"{what} {path} is {info.st_size / 2 ** 20:.0f} MiB: larger than the "
                             f"{limit / 2 ** 20:.0f} MiB such a file may be")
        with open(path, "rb") as f:
            data = f.read(limit + 1)  # a file that grew since: still bounded
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(data) > limit:
        raise InputError(f"{what} {path} is larger than the {limit / 2 ** 20:.0f} MiB such a file may be")
    if data.startswith(codecs.BOM_UTF8):
        raise InputError(f"{what} {path} starts with a byte-order mark (as some spreadsheet programs save CSV): "
                         "save it as plain UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {e.start})") from None


def read_csv(path, what, header):
    """``(text, rows)`` of a UTF-8 CSV file (:func:`read_text`): blank and ``#`` rows left out, a first row equal to
    ``header`` (where one is given) too."""
    text = read_text(path, what)
    rows = [row for row in csv.reader(text.splitlines()) if row and not row[0].startswith("#")]
    if header and rows and tuple(c.strip().lower() for c in rows[0][:len(header)]) == tuple(header):
        rows = rows[1:]
    return text, rows


def read_labels(spec, what, class_names):
    """``{path: class index}`` from a labels file: ``spec`` is ``FILE``, a CSV of ``path,label`` rows (a header
    row ``path,label`` allowed), or ``FILE:COLUMN``, the column of that name of a wider CSV whose first row names its
    columns, the paths in its column ``path`` (as cifar10n-labels.csv). Each path relative to the data's root;
    every row checked: a path outside the tree, a label not one of ``class_names``, a path twice are one
    InputError naming the row, and ``what`` the file."""
    path, column = split_column(spec)
    _, rows = read_csv(path, what, ("path", "label") if column is None else ())
    if column is None:
        where, at = 0, 1
    else:
        if not rows:
            raise InputError(f"{what} {path} is empty: {column!r} names a column of its first row")
        names = [c.strip() for c in rows[0]]
        for wanted in ("path", column):
            if wanted not in names:
                raise InputError(f"{what} {path} has no column {wanted!r}; its columns: {', '.join(names)[:300]}")
        where, at, rows = names.index("path"), names.index(column), rows[1:]
    width = 2 if column is None else len(names)
    labels = {}
    for line, row in enumerate(rows, start=1 if column is None else 2):
        if len(row) != width:
            raise InputError(f"{path}: row {line} should have {width} fields "
                             f"({'path,label' if column is None else ','.join(names)[:200]}), not {len(row)}")
        image, label = row[where].strip(), row[at].strip()
        if PurePath(image).is_absolute() or ".." in PurePath(image).parts:
            raise InputError(f"{path}: row {line}: {image[:200]!r} lies outside the data tree; a {what} names each "
                             "image by its path relative to the dataset root")
        if label not in class_names:
            raise InputError(f"{path}: row {line}: class {label[:40]!r} is not one of {', '.join(class_names)}")
        if image in labels:
            raise InputError(f"{path}: {image[:200]!r} appears twice")
        labels[image] = class_names.index(label)
    return labels


def split_column(spec):
    """``(path, column or None)`` of ``FILE`` or ``FILE:COLUMN`` (a file whose own name holds a colon is taken
    whole when it exists)."""
    head, colon, column = str(spec).rpartition(":")
    if not colon or not column or not head or Path(spec).expanduser().exists():
        return Path(spec).expanduser(), None
    return Path(head).expanduser(), column


MADE_FROM = "# made from: "  # the first line of a file of positions: what they are positions in (JSON)


def provenance(labels, source_index=None, **about):
    """What a file of positions into ``labels`` is made from, as it is written into the file: ``about`` in words
    (the data, the split, the subset, the seed), how many images, and a digest of their labels and, where known,
    of their ``source_index`` (each image's index in the source it was drawn from)."""
    digest = hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes())
    if source_index is not None:
        digest.update(b"source index")
        digest.update(np.asarray(source_index, dtype=np.int64).tobytes())
    return {**about, "images": int(len(labels)), "sha256": digest.hexdigest()}


def _described(record):
    """A :func:`provenance` record in words."""
    about = ", ".join(f"{k} {v}" for k, v in record.items() if k not in ("images", "sha256"))
    return f"{record.get('images')} images ({about + '; ' if about else ''}labels {str(record.get('sha256'))[:12]})"


def _header(text, prefix, path, needed):
    """The JSON object a ``prefix`` line among the file's first lines holds (with the ``needed`` keys of the given
    types), or None when it has none."""
    line = next((line for line in text.split("\n", 3)[:3] if line.startswith(prefix)), None)
    if line is None:
        return None
    try:
        record = json.loads(line[len(prefix):])
    except (json.JSONDecodeError, RecursionError):
        record = None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), kind) for k, kind in needed.items()):
        raise InputError(f"{path}: its line '{prefix.strip()}' is not as this tool writes it")
    return record


def read_made_from(text, path):
    """The :func:`provenance` record a file's first line holds, or None when it has none."""
    return _header(text, MADE_FROM, path, {"images": int, "sha256": str})


DECISIONS_LINE = "# decisions: "  # a review's export: the decision log it was made from (its name and sha256)


def check_decisions(text, path):
    """Refuse a review's export that is not the export of the decision log beside it (a review stopped between
    writing the two): the log holds the decisions, and the export is written anew from it."""
    record = _header(text, DECISIONS_LINE, path, {"file": str, "sha256": str})
    if record is None:
        return
    log = Path(path).parent / Path(record["file"]).name
    try:
        digest = hashlib.sha256(read_text(log, "decision log").encode()).hexdigest()
    except InputError:
        digest = None
    if digest != record["sha256"]:
        raise InputError(f"{path} is not the export of the decisions in {log} (the review stopped between writing "
                         "the two, or the log is gone): run python -m experiments.review on its run directory once, "
                         "which writes the file anew from the decisions")


DROP, DROPPED = "drop", -1  # a relabel file's label that leaves the image out of training, and its new label


def apply_relabel_file(y, path, class_names, paths=None, made_from=None):
    """Apply a CSV relabel file to labels ``y``; return the new labels and a record.

    Its rows are ``index,label`` (the benchmark's and CIFAR-10's training
    images) or, for images that have ``paths`` (your own folders), ``path,label``
    with the path relative to the dataset's root, as the studies write them. A
    label of ``drop`` (where no class has that name) leaves the image out of
    training: its new label is ``DROPPED`` (-1). A file of positions must say what it was made from (its first
    line, :data:`MADE_FROM`), and is refused unless that is ``made_from`` (:func:`provenance` of ``y``; by
    default of ``y`` alone); a review's export, unless it is that of the decision log beside it.
    """
    path = Path(path)
    key = "index" if paths is None else "path"
    text, rows = read_csv(path, "relabel file", (key, "label"))
    check_decisions(text, path)
    if paths is None:  # positions: they must be positions in these images
        if rows and tuple(c.strip().lower() for c in rows[0]) == ("path", "label"):
            raise InputError(f"{path} names images by path, and these training images have no files (the benchmark "
                             "or CIFAR-10 drawn from its arrays): it was made for image folders of your own")
        made_from = made_from or provenance(y)
        theirs = read_made_from(text, path)
        if theirs is None:
            raise InputError(f"{path} names images by position but does not say what data it was made from (a first "
                             f"line '{MADE_FROM}...', as label_noise and review write it): its positions cannot be "
                             "checked against these images")
        if (theirs["images"], theirs["sha256"]) != (made_from["images"], made_from["sha256"]):
            raise InputError(f"{path} was made from {_described(theirs)}, not from these training images: "
                             f"{_described(made_from)}; its positions would name other images")
    where = None if paths is None else {p: i for i, p in enumerate(paths)}
    y_new = np.array(y, copy=True)
    seen = {}
    for line, row in enumerate(rows, start=1):
        if len(row) != 2:
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


def write_relabel_file(path, indices, labels, class_names, paths=None, made_from=None, decisions=None):
    """Write a CSV relabel file that apply_relabel_file reads: ``index,label`` with class names (``drop`` for a
    label of ``DROPPED``), its first line saying what the positions are in (``made_from``, required), or
    ``path,label`` naming each image by its path (your own folders: a file a person can open); ``decisions``:
    ``(path, sha256)`` of the decision log a review's export is made from."""
    if paths is None and made_from is None:
        raise ValueError("a relabel file of positions must say what they are positions in (made_from)")
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        if paths is None:  # positions: what they are positions in (a file of paths names its images itself)
            f.write(MADE_FROM + json.dumps(made_from, sort_keys=True) + "\n")
        if decisions is not None:
            f.write(DECISIONS_LINE + json.dumps({"file": Path(decisions[0]).name, "sha256": decisions[1]}) + "\n")
        writer = csv.writer(f)
        writer.writerow(["index" if paths is None else "path", "label"])
        writer.writerows((int(i) if paths is None else paths[int(i)],
                          DROP if label == DROPPED else class_names[int(label)]) for i, label in zip(indices, labels))
