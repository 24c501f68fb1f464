"""Evaluation with ``sklearn.metrics``: the metrics that stay honest on imbalanced data."""

import math
import warnings

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
import numpy as np
from sklearn import metrics as skm

from keras_apml.pipeline import make_dataset
from keras_apml.progress import StepProgress


def predict(model, x, batch_size=256, verbose=0, what="predicting", view=None):
    """``model.predict`` on uint8 images, [0, 1] float images or float features: an array, or a dict of arrays for
    a model with named outputs; ``verbose`` shows the progress of ``what`` (see :mod:`keras_apml.progress`);
    ``view`` (a function of a batch of images) predicts on a view of the images instead (:data:`VIEWS`)."""
    def dataset(images):
        ds = make_dataset(images, batch_size=batch_size)
        return ds.map(view) if view is not None else ds

    if not verbose or not len(x):
        return model.predict(dataset(x), verbose=0)
    progress, chunk, parts = StepProgress(what, len(x), verbose), batch_size * 16, []
    for start in range(0, len(x), chunk):
        parts.append(model.predict(dataset(x[start:start + chunk]), verbose=0))
        progress.update(min(start + chunk, len(x)))
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def _mirror(batch):
    return batch[:, :, ::-1]


def _shifted(rows, columns):
    """A view of the images moved by ``rows`` and ``columns`` pixels (-1, 0 or 1), reflect-padded as airbench's."""
    def view(batch):
        height, width = batch.shape[1], batch.shape[2]
        padded = keras.ops.pad(batch, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        return padded[:, 1 - rows:1 - rows + height, 1 - columns:1 - columns + width]
    return view


# airbench94's test-time augmentation: the views of each level with their weights. Level 1: each image and its
# mirror image, 1/2 each; level 2: those at 1/4 each and the two one-pixel translations (up-left and
# down-right, reflect-padded), each with its mirror image, at 1/8 each.
VIEWS = {
    0: ((None, 1.0),),
    1: ((None, 0.5), (_mirror, 0.5)),
    2: ((None, 0.25), (_mirror, 0.25), (_shifted(1, 1), 0.125), (lambda b: _mirror(_shifted(1, 1)(b)), 0.125),
        (_shifted(-1, -1), 0.125), (lambda b: _mirror(_shifted(-1, -1)(b)), 0.125)),
}


def predict_proba(model, x, batch_size=256, mirror=False, verbose=0, what="predicting"):
    """A model's class probabilities (or any outputs) for uint8 images, [0, 1] float images or float features,
    batch by batch.

    ``mirror`` (test-time augmentation) averages each image's outputs with its
    left-right mirror image's; ``verbose`` shows the progress of ``what``.
    """
    probabilities = np.asarray(predict(model, x, batch_size, verbose, what))
    if mirror:
        probabilities = (probabilities + np.asarray(predict(model, x, batch_size, verbose, f"{what} mirrored",
                                                            view=_mirror))) / 2
    return probabilities


def predict_tta(model, x, level, batch_size=256):
    """Class probabilities with airbench94's test-time augmentation of ``level`` (0, 1 or 2; :data:`VIEWS`): the
    views' log-probabilities weighted as airbench weighs its views' logits (the same, up to a constant per image),
    then normalised."""
    if level not in VIEWS:
        raise ValueError(f"test-time augmentation level {level!r}: expected 0, 1 or 2")
    total = sum(weight * np.log(np.maximum(np.asarray(predict(model, x, batch_size, view=view), np.float64), 1e-30))
                for view, weight in VIEWS[level])
    total = np.exp(total - total.max(axis=1, keepdims=True))
    return total / total.sum(axis=1, keepdims=True)


def predict_labels(model_or_predictions, x=None, batch_size=256):
    """Class predictions from a Keras model (run on ``x``, see :func:`predict_proba`), class probabilities or labels."""
    if hasattr(model_or_predictions, "predict"):
        if x is None:
            raise ValueError("a model needs images x to predict on")
        model_or_predictions = predict_proba(model_or_predictions, x, batch_size)
    predictions = np.asarray(model_or_predictions)
    return predictions.argmax(axis=1) if predictions.ndim == 2 else predictions.astype(np.int64)


def evaluate(model_or_predictions, x, y, class_names, y_true=None, batch_size=256):
    """Accuracy, per-class and balanced accuracy, precision/recall/F1, report and confusion matrices.

    ``y`` are the labels to score against. Where the benchmark also knows the
    true labels, pass them as ``y_true``: the same metrics against them are
    added under ``"true_labels"``.
    """
    y_pred = predict_labels(model_or_predictions, x, batch_size)
    result = classification_metrics(np.asarray(y), y_pred, class_names)
    if y_true is not None:
        result["true_labels"] = classification_metrics(np.asarray(y_true), y_pred, class_names)
    return result


def evaluate_splits(model, splits, class_names):
    """Evaluate ``model`` on each named :class:`~keras_apml.dataset.Split` (observed labels, and true labels where
    known); returns ``{split: metrics}``."""
    return {name: evaluate(model, split.x, split.y, class_names, y_true=split.y_true)
            for name, split in splits.items()}


def classification_metrics(y, y_pred, class_names):
    """The metrics of one label set, JSON-ready (an undefined value is None, never NaN)."""
    labels = list(range(len(class_names)))
    if len(y) != len(y_pred):
        raise ValueError(f"{len(y)} labels but {len(y_pred)} predictions")
    counts = skm.confusion_matrix(y, y_pred, labels=labels)
    support = counts.sum(axis=1)
    per_class = [float(counts[i, i] / support[i]) if support[i] else None for i in labels]
    with warnings.catch_warnings():
        # balanced accuracy warns when a predicted class is absent from y; it is still defined.
        warnings.simplefilter("ignore", UserWarning)
        balanced = skm.balanced_accuracy_score(y, y_pred)
    macro = skm.precision_recall_fscore_support(y, y_pred, labels=labels, average="macro", zero_division=0)
    weighted = skm.precision_recall_fscore_support(y, y_pred, labels=labels, average="weighted", zero_division=0)
    report_args = dict(labels=labels, target_names=list(class_names), zero_division=0, digits=3)
    return {
        "n": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, y_pred)),
        "balanced_accuracy": float(balanced),
        "per_class_accuracy": dict(zip(class_names, per_class)),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(macro[2]),
        "weighted_precision": float(weighted[0]),
        "weighted_recall": float(weighted[1]),
        "weighted_f1": float(weighted[2]),
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalized": _finite(skm.confusion_matrix(y, y_pred, labels=labels, normalize="true")),
        "classification_report": skm.classification_report(y, y_pred, **report_args),
        "classification_report_dict": skm.classification_report(y, y_pred, output_dict=True, **report_args),
    }


def _finite(matrix):
    """A float matrix as nested lists with NaN as None."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in np.asarray(matrix, dtype=float)]


def balanced_accuracy_callback(datasets):
    """A Keras callback adding ``<name>_balanced_accuracy`` to every epoch's logs for named ``(x, y)`` sets.

    Put it before the callbacks that read the logs (the history file, the
    best-epoch keeper). For ``val``, a set whose classes are all equally
    frequent, balanced accuracy is exactly the ``val_accuracy`` Keras already
    logged, which is taken instead of a second pass over the images.
    """
    def equally_frequent(y):
        counts = np.bincount(np.asarray(y))
        return counts[counts > 0].min() == counts.max()

    equal = {name: equally_frequent(y) for name, (_, y) in datasets.items()}

    class BalancedAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            for name, (x, y) in datasets.items():
                if name == "val" and equal[name] and "val_accuracy" in logs:
                    logs["val_balanced_accuracy"] = float(logs["val_accuracy"])
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    score = skm.balanced_accuracy_score(y, predict_labels(self.model, x))
                logs[f"{name}_balanced_accuracy"] = float(score)

    return BalancedAccuracy()
