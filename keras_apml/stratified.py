"""Stratified draws: a validation split, a random subset."""

import numpy as np
from sklearn.model_selection import train_test_split

from keras_apml.errors import InputError


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
