"""Stratified draws: a class subset, a validation split, the --quick subset."""

import numpy as np
from sklearn.model_selection import train_test_split

from keras_apml.errors import InputError


def select_classes(x, y, names, class_names):
    """Only the images of the classes called ``names``, relabelled 0.. in ``class_names`` order; returns x, y, names."""
    unknown = [n for n in names if n not in class_names]
    if unknown or not names or len(set(names)) != len(names):
        raise InputError(f"classes {list(names)}: expected distinct names from {list(class_names)}")
    kept = [c for c in class_names if c in names]
    old_labels = np.array([class_names.index(c) for c in kept])
    keep = np.isin(y, old_labels)
    return x[keep], np.searchsorted(old_labels, y[keep]).astype(y.dtype), tuple(kept)


def validation_split(y, size=0.2, seed=0):
    """Stratified ``(train_indices, validation_indices)``; ``size`` is a fraction of ``y`` or a count."""
    try:
        return train_test_split(np.arange(len(y)), test_size=size, random_state=seed, stratify=y)
    except ValueError as e:  # a class too small to stratify, or a split too small to hold every class
        raise InputError(f"cannot split {len(y)} images {1 - size if size < 1 else len(y) - size:g} / {size:g} "
                         f"stratified: {' '.join(str(e).split())[:200]}") from None


def stratified_indices(y, n, seed=0):
    """The indices of a stratified random subset of at most ``n`` of the labels ``y`` (all of them when fewer)."""
    if n >= len(y):
        return np.arange(len(y))
    return train_test_split(np.arange(len(y)), train_size=n, random_state=seed, stratify=y)[0]


def stratified_subset(x, y, n, seed=0):
    """A stratified random subset of at most ``n`` images (for --quick runs)."""
    if n >= len(y):
        return x, y
    idx = stratified_indices(y, n, seed)
    return x[idx], y[idx]
