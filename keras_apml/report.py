"""Markdown for report.md: tables of metrics, of seeds and of recipes, and the words for a training's outcome.

Each study's own sections live with the study (``experiments/<name>.py``);
this module holds what several of them share, and imports no TensorFlow.
"""

import numpy as np

from keras_apml import recipe as recipe_settings


def markdown_table(headers, rows):
    """A markdown table; floats get four decimals, None shows as an em dash."""
    def cell(v):
        if v is None:
            return "—"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def model_summary(model):
    """The text of ``model.summary()``."""
    lines = []
    model.summary(print_fn=lambda line, line_break=True: lines.append(line))  # a set width cuts off "Param #"
    return "\n".join(lines)


def label_sets(split_metrics):
    """Yield ``(split, labels, metrics)`` for observed labels and, where known, true ones."""
    for split, metrics in split_metrics.items():
        yield split, "observed", metrics
        if metrics.get("true_labels"):
            yield split, "true", metrics["true_labels"]


PER_CLASS_INLINE = 10  # up to this many classes, per-class accuracy fits one cell; past it, a table of its own


def metrics_table(split_metrics, class_names):
    """A markdown table: accuracy, balanced accuracy, macro F1 and per-class accuracy of each split (for many
    classes, per-class accuracy in a second table, a row per class)."""
    sets = list(label_sets(split_metrics))
    inline = len(class_names) <= PER_CLASS_INLINE
    rows = [(split, labels, m["accuracy"], m["balanced_accuracy"], m["macro_f1"],
             *([" / ".join("—" if v is None else f"{v:.3f}" for v in m["per_class_accuracy"].values())] if inline
               else [])) for split, labels, m in sets]
    headers = ["split", "labels", "accuracy", "balanced accuracy", "macro F1",
               *(["per-class accuracy (" + " / ".join(class_names) + ")"] if inline else [])]
    table = markdown_table(headers, rows)
    if inline:
        return table
    per_class = [(c, *(m["per_class_accuracy"][c] for _, _, m in sets)) for c in class_names]
    return table + "\n\nPer-class accuracy:\n\n" + markdown_table(
        ["class", *(f"{split} ({labels})" for split, labels, _ in sets)], per_class)


SEED_METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")


def summarize_seeds(per_seed, class_names):
    """Mean and std over seeds of each metric and per-class accuracy: ``{labels: {metric: (mean, std)}}``.

    ``per_seed`` is a list of :func:`evaluation.evaluate` results of one
    configuration; ``labels`` is "observed" and, where known, "true".
    """
    summary = {}
    for labels in ("observed", "true"):
        runs = [m if labels == "observed" else m.get("true_labels") for m in per_seed]
        if not runs or any(r is None for r in runs):
            continue
        values = {k: [r[k] for r in runs] for k in SEED_METRICS}
        for c in class_names:
            values[f"accuracy_{c}"] = [r["per_class_accuracy"][c] for r in runs]
        summary[labels] = {k: _mean_std(v) for k, v in values.items()}
    return summary


def _mean_std(values):
    """(mean, population std) of the defined values; the std is None for one value, both for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values)) if len(values) > 1 else None)


def mean_std(pair):
    """``0.912 ± 0.010``; ``0.912`` for one seed (no spread to show); an em dash when undefined."""
    mean, std = pair
    if mean is None:
        return "—"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def seed_words(seeds):
    """``Mean ± std over seeds 0, 1, 2`` or ``Seed 0 only (no spread)``."""
    if len(seeds) == 1:
        return f"Seed {seeds[0]} only (no spread)"
    return f"Mean ± std over seeds {', '.join(map(str, seeds))}"


def seed_table(summaries, class_names, first="strategy"):
    """Markdown: one row per configuration and label set (true first), mean ± std over seeds."""
    headers = [first, "dev labels", "accuracy", "balanced accuracy",
               *(f"{c} accuracy" for c in class_names), "macro precision", "macro recall", "macro F1"]
    rows = []
    for name, summary in summaries.items():
        for labels in ("true", "observed"):
            if labels in summary:
                s = summary[labels]
                rows.append((name, labels, mean_std(s["accuracy"]), mean_std(s["balanced_accuracy"]),
                             *(mean_std(s[f"accuracy_{c}"]) for c in class_names),
                             mean_std(s["macro_precision"]), mean_std(s["macro_recall"]), mean_std(s["macro_f1"])))
    return markdown_table(headers, rows)


def training_summary(result, validation="validation", timing=None):
    """One paragraph: how the training ended, its epochs and time (and the base outputs' before it, in ``timing``),
    resumption, and the epoch whose weights were kept."""
    resumed = (f" (resumed after epoch {result.resumed_from}; epochs and time are the whole run's)"
               if result.resumed_from else "")
    epochs = plural(result.epochs_run, "epoch")
    text = f"{result.status.capitalize()} after {epochs} in {result.seconds:.1f} s{resumed}."
    if timing and "feature_seconds" in timing:
        how = {"hit": "read from the cache", "miss": "computed and cached", "off": "computed, --no-cache"}
        text += (f" Before it, the frozen base's outputs for every image took {timing['feature_seconds']:.1f} s "
                 f"({how.get(timing.get('feature_cache'), timing.get('feature_cache'))}).")
    scores = result.history.get("val_balanced_accuracy") or []
    if result.best_epoch is not None and len(scores) >= result.best_epoch:
        best, last = scores[result.best_epoch - 1], scores[-1]
        if result.best_epoch == len(scores):
            text += (f" The last epoch had the highest {validation} balanced accuracy ({best:.4f}); "
                     "the model keeps its weights.")
        else:
            text += (f" The model keeps the weights of epoch {result.best_epoch}, of highest {validation} balanced "
                     f"accuracy ({best:.4f}; the last epoch's: {last:.4f}).")
    return text


def plural(count, noun):
    """``1 epoch``, ``3 epochs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def backbone_section(info, also=""):
    """A study on cached features (``--features``): whose features, how many per image, what they cost; ``also``:
    a sentence on the models that are not heads on them (label_noise's fine-tuned fold models)."""
    cost = "read from the cache" if info["cache"] == "hit" else f"computed in {info['seconds']:.0f} s"
    mirror = ", each image's averaged with its mirror image's" if info["mirror_averaged"] else ""
    if "backbone" not in info and info.get("layers"):
        whose = (f"the features of layers {', '.join(info['layers'])} of `{info['model']}` (image-shaped ones "
                 "pooled to their channels' means and maxima)")
    elif "backbone" not in info:
        whose = f"the penultimate features of `{info['model']}`"
    else:
        weights = {"imagenet": "ImageNet weights", None: "random weights"}.get(info["weights"], info["weights"])
        whose = (f"the pooled features of {info['backbone']} from keras.applications ({weights}; the images "
                 f"resized inside it to {info['input_size']}x{info['input_size']})")
    if also:
        text = (f"## Features\n\nThe heads here are softmax heads on {whose} ({info['size']} per image{mirror}; "
                f"{cost}). {also}")
    else:
        text = (f"## Features\n\nEvery model here is a softmax head on {whose} ({info['size']} per image{mirror}; "
                f"{cost}), not a network trained on the images.")
    if "backbone" in info and info["weights"] is None:
        text += ("\n\n**The backbone's weights are random (`--weights none`): these figures test the path and mean "
                 "nothing about the data.**")
    return text


def recipes_table(recipes):
    """Markdown: one row per named :class:`~keras_apml.recipe.Recipe`, one column per field (those no run uses left
    out), each cell the field's words."""
    rows = {name: recipe_settings.table_row(r) for name, r in recipes.items()}
    used = [i for i in range(len(recipe_settings.headings())) if any(row[i] is not None for row in rows.values())]
    return markdown_table(["run", *(recipe_settings.headings()[i] for i in used)],
                          [(name, *(row[i] for i in used)) for name, row in rows.items()])
