"""The report sections every trained model gets: evaluation of each split,
a metrics table, confusion matrices, classification reports, curves, summary."""

import numpy as np

from keras_apml import evaluation, plots, training


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
    model.summary(print_fn=lambda line, line_break=True: lines.append(line), line_length=100)
    return "\n".join(lines)


def evaluate_splits(model, splits, class_names):
    """Evaluate ``model`` on each named split ``(x, y, y_true or None)``; returns ``{split: metrics}``."""
    return {name: evaluation.evaluate(model, x, y, class_names, y_true=y_true)
            for name, (x, y, y_true) in splits.items()}


def label_sets(split_metrics):
    """Yield ``(split, labels, metrics)`` for observed labels and, where known, true ones."""
    for split, metrics in split_metrics.items():
        yield split, "observed", metrics
        if metrics.get("true_labels"):
            yield split, "true", metrics["true_labels"]


def metrics_table(split_metrics, class_names):
    """A markdown table: accuracy, balanced accuracy, macro F1 and per-class accuracy of each split."""
    rows = [
        (split, labels, m["accuracy"], m["balanced_accuracy"], m["macro_f1"],
         " / ".join("—" if v is None else f"{v:.3f}" for v in m["per_class_accuracy"].values()))
        for split, labels, m in label_sets(split_metrics)
    ]
    headers = ["split", "labels", "accuracy", "balanced accuracy", "macro F1",
               "per-class accuracy (" + " / ".join(class_names) + ")"]
    return markdown_table(headers, rows)


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
    """(mean, population std) of the defined values, or (None, None)."""
    values = [v for v in values if v is not None]
    return (float(np.mean(values)), float(np.std(values))) if values else (None, None)


def mean_std(pair):
    """``0.912 ± 0.010``, or an em dash when undefined."""
    mean, std = pair
    return "—" if mean is None else f"{mean:.3f} ± {std:.3f}"


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


def add_model_report(run, name, split_metrics, class_names, model, train_result, detail_splits=None):
    """Append one model's sections to report.md and save its plots; ``detail_splits`` limits the confusion matrices."""
    title = name.replace("_", " ")
    curves = run.save_figure(
        plots.training_curves(train_result.history, f"{title}: training", train_result.diverged_epoch),
        f"curves_{name}.png")
    resumed = (f" (resumed after epoch {train_result.resumed_from}; epochs and time are the whole run's)"
               if train_result.resumed_from else "")
    epochs = f"{train_result.epochs_run} epoch{'s' if train_result.epochs_run != 1 else ''}"
    sections = [f"## {title}\n\n{train_result.status} after {epochs} in {train_result.seconds:.1f} s{resumed}."
                f"\n\n![training curves]({curves})"]
    if train_result.diverged:
        sections.append(f"**The loss became NaN or infinite at epoch {train_result.diverged_epoch}**: "
                        "no metrics are reported for a diverged run.")
    else:
        sections.append(metrics_table(split_metrics, class_names))
        for split, labels, m in label_sets(split_metrics):
            if detail_splits is not None and split not in detail_splits:
                continue
            png = run.save_figure(plots.confusion_matrix(m["confusion_matrix"], class_names,
                                                         f"{title}: {split} ({labels} labels)"),
                                  f"confusion_{name}_{split}_{labels}.png")
            sections.append(f"### {split}, {labels} labels\n\n![confusion matrix]({png})\n\n"
                            f"```\n{m['classification_report']}```")
    sections.append(f"<details><summary>model summary</summary>\n\n```\n{model_summary(model)}\n```\n</details>")
    run.add_section(name, "\n\n".join(sections))


def finish_trained_model(run, name, model, train_result, splits, class_names, *, extra=None, scorer=None,
                         model_file=None, detail_splits=None, tag=None):
    """Evaluate every split (unless training diverged), save the model, record metrics.json and report it.

    ``scorer`` is ``(model, splits)`` to evaluate instead of ``model`` on
    ``splits`` (a head on cached features, say); ``extra`` adds keys to the
    run's metrics, its "timing" dict merged with the fit's timing. Once all
    is recorded, the training's backup (``tag``) is removed.
    """
    scoring_model, scoring_splits = scorer or (model, splits)
    split_metrics = {} if train_result.diverged else evaluate_splits(scoring_model, scoring_splits, class_names)
    if not train_result.diverged:
        run.save_model(model, model_file or f"{name}.keras")
    extra = dict(extra or {})
    timing = {**train_result.timing(), **extra.pop("timing", {})}
    run.record(name, {**split_metrics, "training": train_result.to_dict(), "timing": timing, **extra})
    add_model_report(run, name, split_metrics, class_names, model, train_result, detail_splits)
    training.remove_backup(run.path, tag)
    return split_metrics
