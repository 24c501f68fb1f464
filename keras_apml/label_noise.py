"""Label-noise detection by confident learning (cleanlab) on out-of-fold predicted probabilities."""

import numpy as np
from sklearn import metrics as skm
from sklearn.model_selection import StratifiedKFold

from keras_apml import evaluation, imbalance
from keras_apml.pipeline import make_dataset
from keras_apml.errors import InputError

CLEANING = ("noisy", "removed", "relabelled")


def out_of_fold_probabilities(x, y, recipe, strategy="class_weight", folds=5, seed=0, on_fold=None, repeats=1,
                              mirror=False, exclude=()):
    """Predicted probabilities for every image from models that never saw it: (repeated) stratified K-fold.

    Each fold's model is ``imbalance.train(strategy, ...)`` on the other folds,
    less the images in ``exclude`` (indices), which are scored but never trained on.
    With ``repeats`` > 1 the whole K-fold runs again with seed ``seed + r * folds``
    (other splits, other model seeds) and each image's probabilities are the
    mean over the repeats: an ensemble, with less of one model's chance errors.
    ``mirror`` scores each held-out image and its mirror image (:func:`predict_probabilities`).
    ``on_fold(i, total)`` is called before each of the ``folds * repeats`` trainings.
    """
    if folds < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {folds}")
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    if np.bincount(y).min() < folds:
        raise InputError(f"the smallest class has {np.bincount(y).min()} images, fewer than {folds} folds")
    num_classes = int(y.max()) + 1
    trainable = np.ones(len(y), dtype=bool)
    trainable[np.asarray(exclude, dtype=np.int64)] = False
    probabilities = np.zeros((repeats, len(y), num_classes), dtype=np.float32)
    for r in range(repeats):
        run_seed = seed + r * folds
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=run_seed)
        for i, (fit_idx, held_idx) in enumerate(splitter.split(np.zeros(len(y)), y), start=1):
            fit_idx = fit_idx[trainable[fit_idx]]
            missing = np.flatnonzero(np.bincount(y[fit_idx], minlength=num_classes) == 0)
            if len(missing):
                raise InputError(f"out-of-fold model {r * folds + i} has no image of class {missing[0]} "
                                 "left to train on once the excluded images are left out")
            if on_fold:
                on_fold(r * folds + i, folds * repeats)
            model, result, _ = imbalance.train(strategy, x[fit_idx], y[fit_idx], recipe, seed=run_seed + i)
            if result.diverged:
                raise InputError(f"out-of-fold model {r * folds + i} diverged at epoch {result.diverged_epoch}: "
                                 "lower --lr")
            probabilities[r, held_idx] = predict_probabilities(model, x[held_idx], mirror=mirror)
    return probabilities.mean(axis=0)


def flag_in_rounds(x, y, recipe, rounds=2, strategy="class_weight", folds=5, seed=0, on_fold=None, repeats=1,
                   mirror=False):
    """Flag likely label errors, each round's fold models trained without the images the round before flagged.

    Round 1 is :func:`out_of_fold_probabilities` on the labels as given and
    :func:`find_issues`. A later round trains its fold models without the
    images the round before flagged (they are still scored) and flags again,
    against the labels as given: models that learnt less of the noise are
    surer of what a mislabelled image really is. Returns the last round's
    out-of-fold probabilities and a list of each round's flagged indices.
    ``on_fold(i, total)`` counts the trainings of all rounds.
    """
    if rounds < 1:
        raise InputError(f"rounds must be at least 1, got {rounds}")
    models = folds * repeats
    flags = []
    for r in range(rounds):
        def progress(i, _, done=r * models):
            if on_fold:
                on_fold(done + i, rounds * models)

        probabilities = out_of_fold_probabilities(x, y, recipe, strategy, folds=folds, seed=seed, on_fold=progress,
                                                  repeats=repeats, mirror=mirror,
                                                  exclude=flags[-1] if flags else ())
        flags.append(find_issues(y, probabilities))
    return probabilities, flags


def predict_probabilities(model, x, batch_size=256, mirror=False):
    """The model's class probabilities for uint8 (or [0, 1] float) images, mirror images averaged in if asked.

    ``mirror`` (test-time augmentation) takes the mean of each image's
    probabilities and its left-right mirror image's.
    """
    probabilities = model.predict(make_dataset(x, batch_size=batch_size), verbose=0)
    if mirror:
        mirrored = model.predict(make_dataset(np.ascontiguousarray(x[:, :, ::-1]), batch_size=batch_size), verbose=0)
        probabilities = (probabilities + mirrored) / 2
    return probabilities


def find_issues(labels, probabilities):
    """Indices of likely label errors (cleanlab's find_label_issues), most confidently wrong first."""
    from cleanlab.filter import find_label_issues

    return np.asarray(find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence"),
                      dtype=np.int64)


def detection_quality(flagged, y_observed, y_true):
    """Precision, recall and F1 of the flagged indices against the images whose observed label is wrong."""
    wrong = np.asarray(y_observed) != np.asarray(y_true)
    predicted = np.zeros(len(wrong), dtype=bool)
    predicted[np.asarray(flagged, dtype=np.int64)] = True
    precision, recall, f1, _ = skm.precision_recall_fscore_support(wrong, predicted, average="binary",
                                                                   zero_division=0)
    return {"flagged": int(predicted.sum()), "wrong": int(wrong.sum()),
            "correctly_flagged": int(np.sum(wrong & predicted)),
            "precision": float(precision), "recall": float(recall), "f1": float(f1)}


def clean(x, y, flagged, probabilities, how):
    """Training data after cleaning: ``noisy`` (as is), ``removed`` (flagged dropped), ``relabelled`` (to argmax)."""
    if how not in CLEANING:
        raise InputError(f"unknown cleaning {how!r}; choose from {', '.join(CLEANING)}")
    if how == "noisy":
        return x, y
    if how == "removed":
        keep = np.ones(len(y), dtype=bool)
        keep[flagged] = False
        return x[keep], y[keep]
    y = y.copy()
    y[flagged] = evaluation.predict_labels(probabilities[flagged])
    return x, y
