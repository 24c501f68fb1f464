"""Label-noise detection by confident learning (cleanlab) on out-of-fold predicted probabilities."""

from collections import Counter

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn import metrics as skm
from sklearn.model_selection import StratifiedKFold

from keras_apml import evaluation, trainer
from keras_apml.cluster import Tasks
from keras_apml.errors import InputError

CLEANING = ("noisy", "removed", "relabelled")


def strategy_fit_predict(strategy, recipe, mirror=False):
    """A fit-and-predict callable for :func:`out_of_fold_probabilities`: ``trainer.train`` with ``strategy``.

    It trains the recipe's network on the images it is given and returns
    its probabilities for the held-out ones (each averaged with its mirror
    image's with ``mirror``); a training that diverges is an InputError.
    """
    def fit_predict(x_fit, y_fit, x_held, seed):
        model, result, _ = trainer.train(strategy, x_fit, y_fit, recipe, seed=seed)
        if result.diverged:
            raise InputError(f"diverged at epoch {result.diverged_epoch}: lower --lr")
        return evaluation.predict_proba(model, x_held, mirror=mirror)

    return fit_predict


class Views:
    """Several inputs of the same images, indexed together (e.g. a backbone's features and the pixels), for an
    :func:`ensemble_fit_predict` whose members each take one."""

    def __init__(self, *arrays):
        if len({len(a) for a in arrays}) != 1:
            raise InputError(f"views of the same images must have one length each, got {[len(a) for a in arrays]}")
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return Views(*(a[index] for a in self.arrays))


def ensemble_fit_predict(*members):
    """A fit-and-predict callable whose probabilities are the mean of its ``members``' (fit-and-predict callables),
    member i trained and scored on view i of :class:`Views` inputs: an ensemble over the same folds and seeds."""
    def fit_predict(x_fit, y_fit, x_held, seed):
        return np.mean([member(part_fit, y_fit, part_held, seed)
                        for member, part_fit, part_held in zip(members, x_fit.arrays, x_held.arrays, strict=True)],
                       axis=0)

    return fit_predict


def check_folds(y, folds, num_classes=None):
    """Refuse a K-fold that some class cannot take part in: fewer images of it than folds."""
    if folds < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {folds}")
    counts = np.bincount(y, minlength=num_classes or 0)
    if counts.min() < folds:
        raise InputError(f"class {int(counts.argmin())} has {counts.min()} training images, fewer than {folds} folds")


def out_of_fold_probabilities(x, y, fit_predict, folds=5, seed=0, on_fold=None, repeats=1, exclude=(), tasks=None):
    """Predicted probabilities for every image from models that never saw it: (repeated) stratified K-fold.

    ``fit_predict(x_fit, y_fit, x_held, seed)`` trains any classifier on the
    other folds and returns its class probabilities for the held-out fold (as
    cleanlab takes any classifier's out-of-fold probabilities; see
    :func:`strategy_fit_predict`). The images in ``exclude`` (indices) are
    scored but never trained on. With ``repeats`` > 1 the whole K-fold runs
    again with seed ``seed + r * folds`` (other splits, other model seeds) and
    each image's probabilities are the mean over the repeats: an ensemble,
    with less of one model's chance errors. ``tasks`` (a
    :class:`keras_apml.cluster.Tasks`) runs the ``folds * repeats`` fold
    models, in turn here by default; ``on_fold(i, total)`` is called as each
    one starts here, as each one finishes on a cluster.
    """
    check_folds(y, folds)
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    num_classes = int(y.max()) + 1
    trainable = np.ones(len(y), dtype=bool)
    trainable[np.asarray(exclude, dtype=np.int64)] = False
    splits = {}  # "out-of-fold model N": (repeat, indices trained on, indices scored, model seed)
    for r in range(repeats):
        run_seed = seed + r * folds
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=run_seed)
        for i, (fit_idx, held_idx) in enumerate(splitter.split(np.zeros(len(y)), y), start=1):
            name = f"out-of-fold model {r * folds + i}"
            fit_idx = fit_idx[trainable[fit_idx]]
            missing = np.flatnonzero(np.bincount(y[fit_idx], minlength=num_classes) == 0)
            if len(missing):
                raise InputError(f"{name} has no image of class {missing[0]} left to train on once the excluded "
                                 "images are left out")
            splits[name] = r, fit_idx, held_idx, run_seed + i
    tasks = tasks or Tasks()
    x_all, y_all = tasks.share(x, y)
    jobs = [(name, (fit_predict, x_all, y_all, fit_idx, held_idx, model_seed), {})
            for name, (_, fit_idx, held_idx, model_seed) in splits.items()]
    numbers = {name: n for n, name in enumerate(splits, start=1)}
    probabilities = np.zeros((repeats, len(y), num_classes), dtype=np.float32)
    for name, held_probabilities in tasks.run(fold_probabilities, jobs,
                                              announce=lambda name: on_fold and on_fold(numbers[name], len(jobs))):
        r, _, held_idx, _ = splits[name]
        probabilities[r, held_idx] = held_probabilities
    return probabilities.mean(axis=0)


def fold_probabilities(fit_predict, x, y, fit_idx, held_idx, seed):
    """One out-of-fold model: ``fit_predict`` trained on ``x[fit_idx]``, its probabilities for ``x[held_idx]``."""
    return fit_predict(x[fit_idx], y[fit_idx], x[held_idx], seed)


def flag_in_rounds(x, y, fit_predict, rounds=2, folds=5, seed=0, on_fold=None, repeats=1, tasks=None):
    """Flag likely label errors, each round's fold models trained without the images the round before flagged.

    Round 1 is :func:`out_of_fold_probabilities` on the labels as given and
    :func:`find_issues`. A later round trains its fold models without the
    images the round before flagged (they are still scored) and flags again,
    against the labels as given: models that learnt less of the noise are
    surer of what a mislabelled image really is. Returns the last round's
    out-of-fold probabilities and a list of each round's flagged indices.
    ``on_fold(i, total)`` counts the trainings of all rounds; ``tasks`` runs
    each round's fold models (in turn here by default).
    """
    if rounds < 1:
        raise InputError(f"rounds must be at least 1, got {rounds}")
    models = folds * repeats
    flags = []
    for r in range(rounds):
        def progress(i, _, done=r * models):
            if on_fold:
                on_fold(done + i, rounds * models)

        probabilities = out_of_fold_probabilities(x, y, fit_predict, folds=folds, seed=seed, on_fold=progress,
                                                  repeats=repeats, exclude=flags[-1] if flags else (), tasks=tasks)
        flags.append(find_issues(y, probabilities))
    return probabilities, flags


def find_issues(labels, probabilities):
    """Indices of likely label errors (cleanlab's find_label_issues), most confidently wrong first."""
    # n_jobs=1: cleanlab's default forks a multiprocessing pool, and a fork of a process running TensorFlow's
    # threads can deadlock (it hung a CI run); on arrays this size one process takes milliseconds.
    return np.asarray(find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence",
                                        n_jobs=1), dtype=np.int64)


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


def label_quality(labels, probabilities):
    """cleanlab's label-quality score of each label (self-confidence: the probability the models give it; the
    lower, the likelier wrong)."""
    return get_label_quality_scores(np.asarray(labels), np.asarray(probabilities), method="self_confidence")


def ranking_quality(scores, y_observed, y_true):
    """How well label-quality ``scores`` rank the wrong labels first, without a threshold: the area under the ROC
    curve and the average precision (scikit-learn), None where every label or none is wrong."""
    wrong = np.asarray(y_observed) != np.asarray(y_true)
    if wrong.all() or not wrong.any():
        return {"roc_auc": None, "average_precision": None}
    suspicion = -np.asarray(scores, dtype=np.float64)
    return {"roc_auc": float(skm.roc_auc_score(wrong, suspicion)),
            "average_precision": float(skm.average_precision_score(wrong, suspicion))}


def flags_by_pair(flagged, y_observed, y_true, suggested, class_names):
    """The flags per class pair: for each kind of wrong label (observed, true), how many there are and how many
    were flagged; for the right labels flagged, what they were taken for (observed, suggested)."""
    y_observed, y_true = np.asarray(y_observed), np.asarray(y_true)
    flagged = np.asarray(flagged, dtype=np.int64)
    is_flagged = np.zeros(len(y_observed), dtype=bool)
    is_flagged[flagged] = True
    wrong = y_observed != y_true
    pairs = sorted({(int(o), int(t)) for o, t in zip(y_observed[wrong], y_true[wrong])})
    missed = [{"observed": class_names[o], "true": class_names[t],
               "wrong": int(np.sum(wrong & (y_observed == o) & (y_true == t))),
               "flagged": int(np.sum(is_flagged & wrong & (y_observed == o) & (y_true == t)))} for o, t in pairs]
    right = ~wrong[flagged]
    taken = Counter((class_names[int(o)], class_names[int(s)])
                    for o, s in zip(y_observed[flagged][right], np.asarray(suggested)[right]))
    return {"wrong": missed, "right_flagged": [{"label": o, "taken_for": s, "flagged": n}
                                               for (o, s), n in taken.most_common()]}


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
