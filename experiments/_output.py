"""What a run shows and keeps: its progress lines, its run directory and report, its cluster of trainings."""

import sys
from pathlib import Path

from experiments._rundir import RunDir
from keras_apml import plots, report
from keras_apml.cluster import Tasks
from keras_apml.errors import InputError


def cluster_tasks(args):
    """The study's :class:`keras_apml.cluster.Tasks` (a context manager): in turn here, or on the cluster asked for,
    started by :func:`start_tasks`."""
    return Tasks(args.scheduler, args.local_workers)


def start_tasks(args, tasks):
    """Start the study's cluster, if it asked for one, once its input is checked and before its run directory is
    opened; say where the trainings run."""
    tasks.start()
    if tasks.distributed:
        say(args, f"trainings {tasks.describe()}: a line as each one finishes")


def open_run(name, args, **config):
    """The run directory, opened only once every input is checked; says when it resumes an earlier call."""
    run = RunDir.open(name, args.out, vars(args), fresh=args.fresh, config=config)
    if run.resumed:
        say(args, f"resuming the run in {run.path}")
    return run


def finish(run, args, line=None):
    """Mark the run finished and print where it is (with --quiet too)."""
    run.finish()
    print(f"{line + '; ' if line else ''}run directory: {run.path}", flush=True)
    return 0


def verbosity(args):
    """Keras's ``verbose``: nothing with --quiet, progress bars on a terminal, else one plain line per epoch."""
    if args.quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def say(args, line):
    """One line of progress, unless --quiet."""
    if not args.quiet:
        print(line, flush=True)


def newest(patterns, makes):
    """The newest file under runs/ of the first of ``patterns`` that matches any; ``makes`` says what makes one."""
    for pattern in patterns:
        found = sorted(Path("runs").glob(pattern), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
    where = " or ".join(f"runs/{p}" for p in patterns)
    raise InputError(f"no trained model at {where}; make one with {makes}, or pass --model PATH")


def add_model_report(run, name, split_metrics, class_names, model, train_result, detail_splits=None,
                     validation="validation", timing=None):
    """Append one model's sections to report.md and save its plots; ``detail_splits`` limits the confusion matrices.

    ``validation`` names the set the curves' dashed lines were scored on.
    """
    title = name.replace("_", " ")
    curves = run.save_figure(
        plots.training_curves(train_result.history, f"{title}: training", train_result.diverged_epoch,
                              train_result.best_epoch, validation, len(class_names)),
        f"curves_{name}.png")
    summary = report.training_summary(train_result, validation, timing)
    if validation != "validation" and any(k.startswith("val_") for k in train_result.history):
        summary += (f" The dashed curves are {validation}, scored after every epoch to draw them; nothing is chosen "
                    "on it.")
    sections = [f"## {title}\n\n{summary}\n\n![training curves]({curves})"]
    if train_result.diverged:
        sections.append(f"**The loss became NaN or infinite at epoch {train_result.diverged_epoch}**: "
                        "no metrics are reported for a diverged run.")
    else:
        sections.append(report.metrics_table(split_metrics, class_names))
        for split, labels, m in report.label_sets(split_metrics):
            if detail_splits is not None and split not in detail_splits:
                continue
            png = run.save_figure(plots.confusion_matrix(m["confusion_matrix"], class_names,
                                                         f"{title}: {split} ({labels} labels)"),
                                  f"confusion_{name}_{split}_{labels}.png")
            sections.append(f"### {split}, {labels} labels\n\n![confusion matrix]({png})\n\n"
                            f"```\n{m['classification_report']}```")
    sections.append(f"<details><summary>model summary</summary>\n\n```\n{report.model_summary(model)}\n```\n</details>")
    run.add_section(name, "\n\n".join(sections))


def finish_trained_model(run, name, model, train_result, splits, class_names, *, extra=None, scorer=None,
                         model_file=None, detail_splits=None, tag=None, validation="validation"):
    """Evaluate every split (unless training diverged), save the model, record metrics.json and report it.

    ``scorer`` is ``(model, splits)`` to evaluate instead of ``model`` on
    ``splits`` (a head on cached features, say); ``extra`` adds keys to the
    run's metrics, its "timing" dict merged with the fit's timing. Once all
    is recorded, the training's backup (``tag``) is removed.
    """
    from keras_apml import checkpoints, evaluation  # here, not at the top: they import TensorFlow, --help does not

    scoring_model, scoring_splits = scorer or (model, splits)
    split_metrics = {} if train_result.diverged else evaluation.evaluate_splits(scoring_model, scoring_splits,
                                                                                class_names)
    if not train_result.diverged:
        run.save_model(model, model_file or f"{name}.keras")
    extra = dict(extra or {})
    timing = {**train_result.timing(), **extra.pop("timing", {})}
    timing["total_seconds"] = round(timing["fit_seconds"] + timing.get("feature_seconds", 0.0), 3)
    run.record(name, {**split_metrics, "training": train_result.to_dict(), "timing": timing, **extra})
    add_model_report(run, name, split_metrics, class_names, model, train_result, detail_splits, validation, timing)
    checkpoints.remove_backup(run.path, tag)
    return split_metrics
