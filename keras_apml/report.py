"""The report sections every trained model gets: evaluation of each split,
a metrics table, confusion matrices, classification reports, curves, summary."""

from keras_apml import evaluation, plots
from keras_apml.runs import markdown_table, model_summary


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


def add_model_report(run, name, split_metrics, class_names, model, train_result, detail_splits=None):
    """Append one model's sections to report.md and save its plots; ``detail_splits`` limits the confusion matrices."""
    title = name.replace("_", " ")
    curves = run.save_figure(
        plots.training_curves(train_result.history, f"{title}: training", train_result.diverged_epoch),
        f"curves_{name}.png")
    sections = [f"## {title}\n\n{train_result.status} after {train_result.epochs_run} epochs "
                f"in {train_result.seconds:.1f} s.\n\n![training curves]({curves})"]
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
    run.add_section("\n\n".join(sections))


def finish_trained_model(run, name, model, train_result, splits, class_names, *, extra=None, scorer=None,
                         model_file=None, detail_splits=None):
    """Evaluate every split (unless training diverged), save the model, record metrics.json and report it.

    ``scorer`` is ``(model, splits)`` to evaluate instead of ``model`` on
    ``splits`` (a head on cached features, say); ``extra`` adds keys to the
    run's metrics, its "timing" dict merged with the fit's timing.
    """
    scoring_model, scoring_splits = scorer or (model, splits)
    split_metrics = {} if train_result.diverged else evaluate_splits(scoring_model, scoring_splits, class_names)
    if not train_result.diverged:
        run.save_model(model, model_file or f"{name}.keras")
    extra = dict(extra or {})
    timing = {**train_result.timing(), **extra.pop("timing", {})}
    run.record(name, {**split_metrics, "training": train_result.to_dict(), "timing": timing, **extra})
    add_model_report(run, name, split_metrics, class_names, model, train_result, detail_splits)
    return split_metrics
