"""A study's data as one value: named splits of images and labels, and the class names.

Every source returns a :class:`Dataset`: CIFAR-10 (its batches or its image
tree, :func:`keras_apml.cifar10.dataset`), the car/truck/cat benchmark
(:func:`keras_apml.benchmark.load_benchmark`) and your own image folders
(:func:`keras_apml.folders.load`). A split holds images (an array, or images
left in their files), the observed labels, the true labels where they are
known, each image's path where it has a file, and its index in the source it
was drawn from.
"""

import dataclasses
from collections.abc import Mapping

import numpy as np

from keras_apml.errors import InputError
from keras_apml.npz import load_arrays, save_arrays
from keras_apml.stratified import stratified_indices, validation_split

SPLIT_FIELDS = ("x", "y", "y_true", "paths", "index")


@dataclasses.dataclass(frozen=True, repr=False)
class Split:
    """One split: images ``x`` (uint8 NHWC, or :class:`keras_apml.folders.FileImages`), observed labels ``y``,
    true labels ``y_true`` where known, each image's ``paths`` (relative to its dataset's root) where it has a
    file, and its ``index`` in the source it was drawn from (CIFAR-10's, for the benchmark) where it was drawn."""

    x: object
    y: np.ndarray
    y_true: np.ndarray | None = None
    paths: tuple | None = None
    index: np.ndarray | None = None

    def __len__(self):
        return len(self.y)

    def __repr__(self):
        known = [name for name in ("y_true", "paths", "index") if getattr(self, name) is not None]
        shape = "x".join(map(str, self.x.shape[1:])) if hasattr(self.x, "shape") else "?"
        return f"Split({len(self)} images of {shape}{', with ' + ', '.join(known) if known else ''})"

    def take(self, idx):
        """The images at the positions ``idx``, with everything known about them."""
        return Split(*(_take(getattr(self, name), idx) for name in SPLIT_FIELDS))

    def replace(self, **fields):
        """A copy with ``fields`` replaced (e.g. corrected labels ``y``)."""
        return dataclasses.replace(self, **fields)


def _take(values, idx):
    """``values`` at ``idx`` (None stays None; a tuple of paths stays a tuple)."""
    if values is None:
        return None
    return tuple(values[i] for i in idx) if isinstance(values, tuple) else values[idx]


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class Dataset(Mapping):
    """Named splits ("train", then "validation" and "test", or the benchmark's "dev") and the class names, with
    where they came from: ``source`` in words, for your own folders their ``layout`` and the ``skipped``
    unreadable files as ``(path, reason)``, and JSON-ready ``notes`` on what was done to them on the way (classes
    selected, a relabel file applied). A read-only mapping of split names to :class:`Split`."""

    splits: dict
    class_names: tuple
    source: str = ""
    layout: str | None = None
    skipped: tuple = ()
    notes: dict = dataclasses.field(default_factory=dict)

    def __getitem__(self, name):
        try:
            return self.splits[name]
        except KeyError:
            raise KeyError(f"no split {name!r}; this dataset has {', '.join(self.splits)}") from None

    def __iter__(self):
        return iter(self.splits)

    def __len__(self):
        return len(self.splits)

    def __repr__(self):
        splits = ", ".join(f"{name} {len(split)}" for name, split in self.splits.items())
        classes = ", ".join(self.class_names[:10]) + (", ..." if len(self.class_names) > 10 else "")
        return f"Dataset({self.source!r}: {len(self.class_names)} classes ({classes}); {splits} images)"

    @property
    def image_size(self):
        """``(height, width)`` of the training images."""
        return tuple(int(v) for v in self["train"].x.shape[1:3])

    @property
    def streamed(self):
        """Whether the images are left in their files (streamed through tf.data) rather than held in memory."""
        return not isinstance(self["train"].x, np.ndarray)

    def replace(self, **splits):
        """A copy with the named splits replaced (or added, after the others)."""
        return dataclasses.replace(self, splits={**self.splits, **splits})

    def only_classes(self, names):
        """Only the images of the classes ``names`` (by observed label, and by true label where known), relabelled
        0.. in this dataset's class order."""
        unknown = [n for n in names if n not in self.class_names]
        if unknown or not names or len(set(names)) != len(names):
            raise InputError(f"classes {list(names)}: expected distinct names from {list(self.class_names)}")
        kept = tuple(c for c in self.class_names if c in names)
        old = np.array([self.class_names.index(c) for c in kept])

        def only(split):
            keep = np.isin(split.y, old) & (True if split.y_true is None else np.isin(split.y_true, old))
            split = split.take(np.flatnonzero(keep))
            new = {k: None if v is None else np.searchsorted(old, v).astype(v.dtype)
                   for k, v in (("y", split.y), ("y_true", split.y_true))}
            return split.replace(**new)
        return dataclasses.replace(self, splits={name: only(s) for name, s in self.splits.items()}, class_names=kept,
                                   notes={**self.notes, "classes": list(kept)})

    def quick(self, n_train, n_other, seed=0):
        """The one --quick subset: of each split a stratified random draw (by observed label) of at most
        ``n_train`` training images and ``n_other`` of every other split's, kept in their order."""
        return dataclasses.replace(self, splits={
            name: split.take(np.sort(stratified_indices(split.y, n_train if name == "train" else n_other, seed)))
            for name, split in self.splits.items()})

    def with_validation(self, fraction, seed=0):
        """Validation images split off train (stratified, seeded), unless there is a validation split already."""
        if "validation" in self.splits:
            return self
        train_idx, val_idx = validation_split(self["train"].y, fraction, seed)
        rest = {name: split for name, split in self.splits.items() if name != "train"}
        return dataclasses.replace(self, splits={"train": self["train"].take(train_idx),
                                                 "validation": self["train"].take(val_idx), **rest})

    def train_and_test(self, test_name="test"):
        """Train (a validation split joined to it) and test, called ``test_name``: for a study that scores on test
        images and splits its own validation images, if any."""
        if "test" not in self.splits:
            raise InputError(f"{self.source} has no test split: add test/<class>/ folders, or use a tree of class "
                             "folders (split by --test-fraction)")
        parts = [self[name] for name in ("train", "validation") if name in self.splits]
        if len(parts) > 1 and self.streamed:
            raise InputError("streamed images of train/ and val/ cannot be joined here: raise --memory-budget")
        train = parts[0] if len(parts) == 1 else Split(*(_join([getattr(p, name) for p in parts])
                                                         for name in SPLIT_FIELDS))
        return dataclasses.replace(self, splits={"train": train, test_name: self["test"]})

    def save(self, path):
        """Save as .npz (no pickles); what is unknown (true labels, paths, indices) is left out."""
        arrays = {"class_names": np.array(self.class_names), "splits": np.array(list(self.splits))}
        for name, split in self.splits.items():
            if not isinstance(split.x, np.ndarray):
                raise InputError("images streamed from their files are saved where they are, not in an .npz")
            arrays.update({f"{field}_{name}": np.asarray(getattr(split, field)) for field in SPLIT_FIELDS
                           if getattr(split, field) is not None})
        save_arrays(path, **arrays)

    @classmethod
    def load(cls, path, source=None):
        """Load a dataset saved with :meth:`save`."""
        arrays = load_arrays(path)
        try:
            splits = {}
            for name in (str(s) for s in arrays["splits"]):
                fields = {field: arrays.get(f"{field}_{name}") for field in SPLIT_FIELDS}
                if fields["paths"] is not None:
                    fields["paths"] = tuple(str(p) for p in fields["paths"])
                splits[name] = Split(**{**fields, "x": arrays[f"x_{name}"], "y": arrays[f"y_{name}"]})
            return cls(splits, tuple(str(c) for c in arrays["class_names"]), source or str(path))
        except KeyError as e:
            raise InputError(f"{path}: not a saved dataset (missing {e})") from None


def _join(values):
    """One split's field from several splits' (None when any lacks it)."""
    if any(v is None for v in values):
        return None
    return tuple(p for v in values for p in v) if isinstance(values[0], tuple) else np.concatenate(values)
