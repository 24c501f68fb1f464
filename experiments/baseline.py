"""Car/truck/cat: look at the data, then train the course's naive baseline and show it collapses to "car".

    python -m experiments.baseline --data benchmark --data-dir /tmp/data/cifar10-jpeg

The data section plots the class counts (observed and true labels, train and
dev), sample images per class and images whose observed label is wrong. The
baseline is ``small_cnn`` trained as the course's provided network was: plain
cross-entropy, SGD (lr 0.001, momentum 0.9), batches of 4, a few epochs, no
balancing. Beside it, scikit-learn's DummyClassifier("most_frequent"): the
"always car" rule the network's plain accuracy should be compared with.
"""

import numpy as np

from experiments import _contract, _data, _flags, _output
from keras_apml import report
from keras_apml.recipe import Recipe

MISLABELLED_SHOWN = 32
# The course's provided network and how it was trained.
COURSE = Recipe(model="small_cnn", optimizer="sgd", lr=1e-3, momentum=0.9, batch_size=4, epochs=4, standardize=False)


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("baseline", __doc__.splitlines()[0])
    _flags.add_seed(p, "training seed")
    _flags.add_benchmark(p)
    _flags.add_recipe(p, COURSE, models=("small_cnn",), model_help="the course's network")
    return _data.choose_data(p, p.parse_args(argv))


def inspect_data(run, bench):
    """Class counts, samples per class and wrongly labelled images, as report sections."""
    from keras_apml import plots

    names, train, dev = bench.class_names, bench["train"], bench["dev"]
    label_sets = {"train observed": train.y, "dev observed": dev.y}
    if train.y_true is not None:
        label_sets = {"train observed": train.y, "train true": train.y_true, "dev observed": dev.y,
                      "dev true": dev.y_true}
    counts = run.save_figure(plots.class_distribution(label_sets, names, "Images per class"), "class_distribution.png")
    samples = run.save_figure(plots.sample_grid(train.x, train.y if train.y_true is None else train.y_true, names),
                              "samples.png")
    mislabelled = None
    table = {name: {"n": len(y), **{c: int(np.sum(y == i)) for i, c in enumerate(names)}}
             for name, y in label_sets.items()}
    if train.y_true is not None:
        wrong = np.flatnonzero(train.y != train.y_true)
        shown = wrong[:MISLABELLED_SHOWN]
        captions = [f"label {names[train.y[i]]}\nis {names[train.y_true[i]]}" for i in shown]
        grid = run.save_figure(plots.image_grid(train.x[shown], captions,
                                                title=f"Wrongly labelled training images ({len(wrong)} in all)"),
                               "mislabelled.png")
        dev_wrong = int(np.sum(dev.y != dev.y_true))
        mislabelled = (grid, len(wrong), len(train), dev_wrong, len(dev))
        table["wrong labels"] = {"train": int(len(wrong)), "dev": dev_wrong}
    run.add_section("data", benchmark_data_section(counts, samples, mislabelled))
    return table


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
             for name, mm in rows for _, labels, m in report.label_sets({"dev": mm})]
    summary = report.markdown_table(["model", "dev labels", "accuracy", "balanced accuracy", "macro F1"], table)
    if share:
        summary += "\n\nShare of dev images predicted as each class: " + ", ".join(
            f"{c} {v:.1%}" for c, v in share.items()) + "."
    majority = rows[0][0] if rows else "always the most frequent class"
    return f"## Baseline against {majority}\n\n" + summary


def main(argv=None):
    args = parse_args(argv)
    recipe = _flags.resolve_recipe(args, COURSE)

    from sklearn.dummy import DummyClassifier

    from keras_apml import evaluation, trainer

    bench = _data.load(args, "benchmark")
    run = _output.open_run("baseline", args, recipe=recipe.to_dict())
    names, train, dev = bench.class_names, bench["train"], bench["dev"]
    counts = inspect_data(run, bench)
    run.note("data", counts)

    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    dummy = DummyClassifier(strategy="most_frequent").fit(flat(train.x), train.y)
    always = evaluation.evaluate(dummy.predict(flat(dev.x)), None, dev.y, names, y_true=dev.y_true)
    majority = names[int(dummy.predict(flat(dev.x[:1]))[0])]
    run.record("always_majority", {"dev": always, "class": majority})

    # dev is scored after every epoch for the curves only: nothing is chosen on it
    model, result, _ = trainer.train("none", train.x, train.y, recipe, seed=args.seed, validation=(dev.x, dev.y),
                                     verbose=_output.verbosity(args))
    run.add_section("what", baseline_what_section(recipe.describe()))
    metrics = _output.finish_trained_model(run, "small_cnn", model, result, bench.splits, names,
                                           model_file="baseline.keras", extra={"recipe": recipe.to_dict()},
                                           validation="dev (observed labels)")
    rows, share = [("always " + majority, always)], None
    if metrics:
        rows.append(("small_cnn", metrics["dev"]))
        predicted = evaluation.predict_labels(model, dev.x)
        share = {c: float(np.mean(predicted == i)) for i, c in enumerate(names)}
        run.update("small_cnn", dev_predicted_share=share)
    run.add_section("comparison", baseline_comparison_section(rows, share))
    return _output.finish(run, args)


if __name__ == "__main__":
    _contract.run(main)
