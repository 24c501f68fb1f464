"""The report sections every trained model gets: evaluation of each split,
a metrics table, confusion matrices, classification reports, curves, summary."""

import numpy as np
import sklearn

from keras_apml import checkpoints, evaluation, plots


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
    summary = training_summary(train_result, validation, timing)
    if validation != "validation" and any(k.startswith("val_") for k in train_result.history):
        summary += (f" The dashed curves are {validation}, scored after every epoch to draw them; nothing is chosen "
                    "on it.")
    sections = [f"## {title}\n\n{summary}\n\n![training curves]({curves})"]
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
                         model_file=None, detail_splits=None, tag=None, validation="validation"):
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
    timing["total_seconds"] = round(timing["fit_seconds"] + timing.get("feature_seconds", 0.0), 3)
    run.record(name, {**split_metrics, "training": train_result.to_dict(), "timing": timing, **extra})
    add_model_report(run, name, split_metrics, class_names, model, train_result, detail_splits, validation, timing)
    checkpoints.remove_backup(run.path, tag)
    return split_metrics


# The experiments' own sections: each returns markdown for the run directory's ``add_section``.
def data_section(recipe_text, data_name, sizes, figures):
    """``experiments.train``: the recipe, the data's splits and their plots."""
    return (f"Recipe: {recipe_text}. Data: {data_name}, " + ", ".join(f"{k} {v}" for k, v in sizes.items())
            + " images.\n\n" + "\n".join(f"![{f}]({f})" for f in figures))


def benchmark_data_section(counts_png, samples_png, mislabelled=None):
    """``experiments.baseline``: class counts, samples and, where the truth is known, the wrongly labelled images.

    ``mislabelled`` is ``(png, wrong train labels, train size, wrong dev labels, dev size)`` or None.
    """
    lines = [f"## Data\n\n![class counts]({counts_png})\n\n![samples per class]({samples_png})"]
    if mislabelled is None:
        lines.append("The course's pickles carry observed labels only: wrong labels cannot be counted.")
    else:
        png, wrong, n_train, dev_wrong, n_dev = mislabelled
        lines.append(f"{wrong} of {n_train} training labels and {dev_wrong} of {n_dev} dev labels are wrong."
                     f"\n\n![wrongly labelled]({png})")
    return "\n\n".join(lines)


def baseline_what_section(recipe_text):
    """``experiments.baseline``: what the baseline is and what to compare it with."""
    return ("## What the baseline does\n\n"
            f"{recipe_text}, no balancing. Compare its plain accuracy with the rule that always answers the most "
            "frequent class: only balanced accuracy (the mean of per-class recalls) tells them apart.")


def baseline_comparison_section(rows, share=None):
    """``experiments.baseline``: ``rows`` of ``(model name, dev metrics)``; ``share`` of predictions per class."""
    table = [(name, labels, m["accuracy"], m["balanced_accuracy"], m["macro_f1"])
             for name, mm in rows for _, labels, m in label_sets({"dev": mm})]
    summary = markdown_table(["model", "dev labels", "accuracy", "balanced accuracy", "macro F1"], table)
    if share:
        summary += "\n\nShare of dev images predicted as each class: " + ", ".join(
            f"{c} {v:.1%}" for c, v in share.items()) + "."
    majority = rows[0][0] if rows else "always the most frequent class"
    return f"## Baseline against {majority}\n\n" + summary


def strategies_section(recipe_text, seeds, descriptions, summaries, class_names, bars_png):
    """``experiments.imbalance``: every strategy, mean ± std over the seeds."""
    described = "\n".join(f"- `{n}`: {d}" for n, d in descriptions.items())
    return (f"## Strategies\n\nRecipe: {recipe_text}. {seed_words(seeds)}; every strategy of a seed starts from the "
            f"same initial weights.\n\n{described}\n\n" + seed_table(summaries, class_names)
            + f"\n\n![balanced accuracy per strategy]({bars_png})")


def best_strategy_section(best, labels, balanced_accuracy, seed):
    """``experiments.imbalance``: the strategy chosen and why."""
    mean = "Mean dev" if balanced_accuracy[1] is not None else "Dev"
    return (f"## Best: `{best}`\n\n{mean} balanced accuracy ({labels} labels) {mean_std(balanced_accuracy)}. "
            f"Its seed-{seed} model is saved as `best.keras`.")


def sweep_section(sweep, results, tied, plot_png):
    """``experiments.hyperparams``: one sweep's configurations, the diverged ones marked, and its best (``tied``:
    every setting of the highest validation balanced accuracy, the one taken first)."""
    def last(result, key):
        return (result["training"]["history"].get(key) or [None])[-1]

    rows = []
    for label, r in results.items():
        val, dev = r.get("validation"), r.get("dev")
        true = (dev or {}).get("true_labels")
        rows.append((label, r["training"]["status"], r["training"]["epochs_run"], last(r, "loss"),
                     last(r, "val_loss"), val and val["balanced_accuracy"], true and true["balanced_accuracy"],
                     dev and dev["balanced_accuracy"], r["timing"]["fit_seconds"]))
    table = markdown_table(["setting", "status", "epochs", "train loss", "validation loss",
                            "validation balanced acc.", "dev balanced acc. (true)", "dev balanced acc. (observed)",
                            "fit seconds"], rows)
    if not tied:
        verdict = "**Every configuration diverged.**"
    elif len(tied) == 1:
        verdict = f"**Best {sweep}: `{tied[0]}`** (highest validation balanced accuracy)."
    else:
        score = results[tied[0]]["validation"]["balanced_accuracy"]
        verdict = (f"**A tie for best {sweep}**: {', '.join(f'`{t}`' for t in tied)} reach the same validation "
                   f"balanced accuracy ({score:.4f}); the first, `{tied[0]}`, is named best.")
    return f"## Sweep: {sweep}\n\n{verdict}\n\n{table}\n\n![{sweep}]({plot_png})"


def epochs_sweep_section(tied, train_result, plot_png):
    """``experiments.hyperparams``: the epoch of highest validation balanced accuracy in one long run (``tied``:
    every epoch that reached it)."""
    span = f"over {plural(train_result.epochs_run, 'epoch')}, {train_result.status}"
    if not tied:
        verdict = f"**No epoch was scored** ({span})."
    elif len(tied) == 1:
        verdict = f"**Best epochs: {tied[0]}** (highest validation balanced accuracy {span})."
    else:
        verdict = (f"**A tie for best epochs**: epochs {', '.join(map(str, tied))} reach the same validation "
                   f"balanced accuracy ({span}); the fewest, {tied[0]}, is named best.")
    return f"## Sweep: epochs\n\n{verdict}\n\n![epochs]({plot_png})"


def hyperparams_base_section(recipe_text, strategy, fit, validation, dev):
    """``experiments.hyperparams``: the base recipe and the images each part of the study uses."""
    return (f"Base recipe: {recipe_text}; strategy `{strategy}`. Training on {fit} images, validation on "
            f"{validation} (observed labels), dev {dev}.")


def best_settings_section(best):
    """``experiments.hyperparams``: the best setting of each sweep."""
    return "## Best setting of each sweep\n\n" + "\n".join(f"- {k}: `{v}`" for k, v in best.items())


def detection_section(detection, settings, sizes, grid_png):
    """``experiments.label_noise``: detection quality per round and split, the flags, the file to review.

    ``settings``: folds, detect_strategy, detect_epochs, repeats, no_mirror, rounds (the parsed flags);
    ``sizes``: (training labels, dev labels).
    """
    s = settings
    repeated = f", averaged over {s.repeats} repeats" if s.repeats > 1 else ""
    features = getattr(s, "features", None)
    mirrored = "" if s.no_mirror else \
        f", each image's {'features ' if features else ''}averaged with its mirror image's"
    epochs = f"{s.detect_epochs} epoch" + ("s" if s.detect_epochs > 1 else "")
    if features:
        epochs += f", a softmax head on the penultimate features of `{features}`"
    rounds = ""
    if s.rounds > 1:
        counts = ", ".join(str(r["flagged"]) for r in detection["rounds"])
        rounds = (f" In {s.rounds} rounds, each after the first with fold models trained without the images "
                  f"the round before flagged (they flagged {counts}); the last round's flags count.")
    lines = [f"## Detection\n\n{s.folds}-fold out-of-fold probabilities from `{s.detect_strategy}` models "
             f"({epochs}){repeated}{mirrored}; cleanlab flagged {detection['train']['flagged']} of {sizes[0]} "
             f"training labels and {detection['dev']['flagged']} of {sizes[1]} dev labels.{rounds}"]
    if "f1" in detection["train"]:
        train = [(f"train, round {i}" if s.rounds > 1 else "train", d)
                 for i, d in enumerate(detection["rounds"], start=1)]
        rows = [(split, d["wrong"], d["flagged"], d["correctly_flagged"], d["precision"], d["recall"], d["f1"])
                for split, d in (*train, ("dev", detection["dev"]))]
        lines.append(markdown_table(["split", "wrong labels", "flagged", "flagged and wrong", "precision", "recall",
                                     "F1"], rows))
    lines.append("Flagged (observed -> suggested): " + ", ".join(
        f"{k}: {v}" for k, v in detection["flagged_by_observed_and_suggested"].items()) + ".")
    lines.append(f"![flagged images]({grid_png})\n\nEach image: observed label -> the class the models suggest; "
                 "`p(label)`, the out-of-fold probability of the observed label (cleanlab's self-confidence: the "
                 "lower, the surer the flag; the grid is in that order); where the truth is known, whether the "
                 "observed label really is wrong, and what the image is. The flagged training labels, with the "
                 "suggested class, are in `flagged_relabel.csv` (dev: `flagged_dev_relabel.csv`): review and edit "
                 "it, then `python -m experiments.train --relabel flagged_relabel.csv` applies it.")
    return "\n\n".join(lines)


def retraining_section(strategy, seeds, summaries, class_names):
    """``experiments.label_noise``: the strategy retrained on noisy, cleaned and (where known) true labels."""
    return (f"## Retraining `{strategy}` on cleaned labels\n\n(a) noisy: the labels as given; (b) removed: flagged "
            "images dropped; (c) relabelled: flagged images given the suggested class; (d) true, where the "
            "benchmark knows them: every label right, the ceiling of any cleaning. "
            f"{seed_words(seeds)}, on dev.\n\n" + seed_table(summaries, class_names, first="training labels"))


def eps_sweep_section(model_path, set_name, n, true_labels, use_predictions, pgd_steps, results, curves_png,
                      grid_png):
    """``experiments.adversarial``: accuracy against eps for FGSM and PGD."""
    rows = [(f"{float(eps):g}", results["fgsm"][eps]["accuracy"], results["fgsm"][eps]["balanced_accuracy"],
             results["pgd"][eps]["accuracy"], results["pgd"][eps]["balanced_accuracy"]) for eps in results["fgsm"]]
    return (f"## Epsilon sweep\n\nModel `{model_path}` on the {set_name} set ({n} images), scored against "
            f"{'true' if true_labels else 'the given'} labels; attacks aim at "
            f"{'the model predictions' if use_predictions else 'the true labels'}. PGD: {pgd_steps} steps of eps/4 "
            "from a random start.\n\n"
            + markdown_table(["eps", "FGSM accuracy", "FGSM balanced acc.", "PGD accuracy", "PGD balanced acc."], rows)
            + f"\n\n![accuracy against eps]({curves_png})\n\n![FGSM images]({grid_png})")


def targeted_section(attack, eps, rates, examples_png, count):
    """``experiments.adversarial``: examples and the success rate per target class."""
    table = markdown_table(["target", "images", "success rate"],
                           [(t, r["images"], r["success_rate"]) for t, r in rates.items()])
    return f"## Examples and targeted attacks ({attack}, eps {eps:g})\n\n![{count} examples]({examples_png})\n\n{table}"


def features_section(model_path, layer, shapes, cache, train_eval):
    """``experiments.feature_extraction``: where the features come from."""
    return (f"Model `{model_path}`, layer `{layer}`: features {shapes[0]} train, {shapes[1]} test (cache "
            f"{cache['cache']}, {cache['seconds']:.1f} s). Train accuracy is measured on {train_eval} training images.")


def backbone_section(info):
    """A study on cached features (``--features``): whose features, how many per image, what they cost."""
    cost = "read from the cache" if info["cache"] == "hit" else f"computed in {info['seconds']:.0f} s"
    mirror = ", each image's averaged with its mirror image's" if info["mirror_averaged"] else ""
    return (f"## Features\n\nEvery model here is a softmax head on the penultimate features of `{info['model']}` "
            f"({info['size']} per image{mirror}; {cost}), not a network trained on the images.")


def classifier_section(name, result, confusion_png):
    """``experiments.feature_extraction``: one scikit-learn classifier's pipeline, convergence and test report."""
    warning = f"\n\n**Did not converge**: {'; '.join(result['warnings'])}" if result["warnings"] else ""
    return (f"## {name}\n\n`{result['pipeline']}`\n\n(Every parameter not written out is scikit-learn "
            f"{sklearn.__version__}'s default.){warning}\n\n![confusion matrix]({confusion_png})\n\n"
            f"```\n{result['test']['classification_report']}```")


def classifier_comparison(rows):
    """``experiments.feature_extraction``: every classifier beside the network's own softmax."""
    return "## Comparison\n\n" + markdown_table(
        ["classifier", "train acc", "test acc", "test balanced acc", "fit s", "predict s"], rows)


def cifar_data_section(sizes, replicas, gpu, samples_png, recipes):
    """``experiments.cifar_transfer``: the splits, the devices and every run's recipe."""
    return (f"CIFAR-10, {sizes['train']} train / {sizes['validation']} validation / {sizes['test']} test images; "
            f"{replicas} replica(s); mixed precision {gpu['mixed_precision']}, XLA {gpu['jit']}.\n\n"
            f"{recipes_table(recipes)}\n\n![samples]({samples_png})")


def recipes_table(recipes):
    """Markdown: one row per named :class:`Recipe`, one column per setting (settings no run uses left out)."""
    def setting(recipe, field):
        value = getattr(recipe, field)
        if field == "standardize":
            special = {"vgg19_transfer": "VGG19's preprocessing", "airbench": "whitened 2x2 patches"}
            return special.get(recipe.model) or ("standardised" if value else "raw [0, 1]")
        if field == "weights":
            return (value or "none (random)") if recipe.model == "vgg19_transfer" else None
        if field == "upsample":
            return f"{value}x{value}" if value else None
        if field == "momentum":
            return f"{value:g}" if recipe.optimizer in ("sgd", "nesterov") else None
        if value is None or value == "none" or (field in ("weight_decay", "label_smoothing") and value == 0):
            return None  # not used by this run
        if field == "augment":
            return value.replace(",", ", ")
        return f"{value:g}" if isinstance(value, float) else value

    fields = [("model", "model"), ("optimizer", "optimizer"), ("lr", "learning rate"), ("momentum", "momentum"),
              ("weight_decay", "weight decay"), ("schedule", "schedule"), ("batch_size", "batch"),
              ("epochs", "epochs"), ("standardize", "inputs"), ("balance", "balance"),
              ("augment", "augmentation"), ("dropout", "dropout"), ("label_smoothing", "label smoothing"),
              ("ema", "weight EMA"), ("init", "start from"), ("weights", "VGG19 base"),
              ("upsample", "VGG19 input size")]
    used = [(f, h) for f, h in fields if any(setting(r, f) is not None for r in recipes.values())]
    rows = [(name, *(setting(r, f) for f, _ in used)) for name, r in recipes.items()]
    return markdown_table(["run", *(h for _, h in used)], rows)


def cifar_comparison(results, study):
    """``experiments.cifar_transfer``: every run's accuracies (percentages, as the study gave them) beside the
    study's own test accuracy, the VGG19 base's weights named; times include computing the base's outputs."""
    def percent(value):
        return f"{value:.2%}"

    rows, notes = [], []
    for name, m in results["runs"].items():
        label = name
        if "weights" in m:
            base = {"imagenet": "ImageNet", "none": "random"}.get(str(m["weights"]).lower(), m["weights"])
            label += f" (base: {base})"
            if base != "ImageNet":
                notes.append(f"`{name}`'s VGG19 base was {'random (--weights none)' if base == 'random' else base}; "
                             "the study's VGG19 figures are with ImageNet weights, so the two do not compare.")
        training = m["training"]
        epochs = str(training["epochs_run"])
        if training.get("best_epoch") is not None:
            epochs += f" (kept {training['best_epoch']})"
        timing = m["timing"]
        seconds = f"{timing['fit_seconds']:.0f} s"
        if "feature_seconds" in timing:
            cached = " (from the cache)" if timing.get("feature_cache") == "hit" else ""
            seconds += f" + {timing['feature_seconds']:.0f} s base outputs{cached}"
        if "test" not in m:
            rows.append((label, training["status"], seconds, None, None, None, None, None, study.get(name, "—")))
            continue
        tta = m.get("test_flip_tta")
        rows.append((label, epochs, seconds, percent(m["train"]["accuracy"]), percent(m["validation"]["accuracy"]),
                     percent(m["test"]["accuracy"]), percent(m["test"]["balanced_accuracy"]),
                     percent(tta["accuracy"]) if tta else "—", study.get(name, "—")))
    table = markdown_table(["run", "epochs (kept)", "time", "train acc", "val acc", "test acc", "test balanced acc",
                            "test acc, flip TTA", "study test acc"], rows)
    notes.append("Flip TTA: each test image's probabilities averaged with its mirror image's; the plain test "
                 "accuracy is without it.")
    notes.append("The study's figures are on the original CIFAR-10; JPEG copies score a little lower.")
    return "## Comparison\n\n" + table + "\n\n" + " ".join(notes)
