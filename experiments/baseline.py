"""Car/truck/cat: look at the data, then train the course's naive baseline and show it collapses to "car".

    python -m experiments.baseline --data-dir /tmp/data/cifar10-jpeg

The data section plots the class counts (observed and true labels, train and
dev), sample images per class and images whose observed label is wrong. The
baseline is ``small_cnn`` trained as the course's provided network was: plain
cross-entropy, SGD (lr 0.001, momentum 0.9), batches of 4, a few epochs, no
balancing. Beside it, scikit-learn's DummyClassifier("most_frequent"): the
"always car" rule the network's plain accuracy should be compared with.
"""

import numpy as np

from keras_apml import cli

MISLABELLED_SHOWN = 32


def parse_args(argv=None):
    """The command line of this experiment."""
    parser = cli.benchmark_options(cli.experiment_parser("baseline", __doc__.splitlines()[0]))
    parser.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate (default: 0.001)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (1 if args.quick else 4)
    args.batch_size = args.batch_size or 4
    return args


def inspect_data(run, bench):
    """Class counts, samples per class and wrongly labelled images, as report sections."""
    from keras_apml import plots

    names = bench.class_names
    label_sets = {"train observed": bench.y_train, "dev observed": bench.y_dev}
    if bench.y_train_true is not None:
        label_sets = {"train observed": bench.y_train, "train true": bench.y_train_true,
                      "dev observed": bench.y_dev, "dev true": bench.y_dev_true}
    counts = run.save_figure(plots.class_distribution(label_sets, names, "Images per class"), "class_distribution.png")
    shown = bench.y_train if bench.y_train_true is None else bench.y_train_true
    samples = run.save_figure(plots.sample_grid(bench.x_train, shown, names), "samples.png")
    lines = [f"## Data\n\n![class counts]({counts})\n\n![samples per class]({samples})"]
    table = {name: {"n": len(y), **{c: int(np.sum(y == i)) for i, c in enumerate(names)}}
             for name, y in label_sets.items()}
    if bench.y_train_true is not None:
        wrong = np.flatnonzero(bench.y_train != bench.y_train_true)
        shown = wrong[:MISLABELLED_SHOWN]
        captions = [f"label {names[bench.y_train[i]]}\nis {names[bench.y_train_true[i]]}" for i in shown]
        grid = run.save_figure(plots.image_grid(bench.x_train[shown], captions,
                                                title=f"Wrongly labelled training images ({len(wrong)} in all)"),
                               "mislabelled.png")
        dev_wrong = int(np.sum(bench.y_dev != bench.y_dev_true))
        lines.append(f"{len(wrong)} of {len(bench.y_train)} training labels and {dev_wrong} of {len(bench.y_dev)} "
                     f"dev labels are wrong.\n\n![wrongly labelled]({grid})")
        table["wrong labels"] = {"train": int(len(wrong)), "dev": dev_wrong}
    else:
        lines.append("The course's pickles carry observed labels only: wrong labels cannot be counted.")
    run.add_section("\n\n".join(lines))
    return table


def main(argv=None):
    args = parse_args(argv)

    from sklearn.dummy import DummyClassifier

    from keras_apml import data, evaluation, imbalance, report
    from keras_apml.runs import RunDir, markdown_table

    run = RunDir.create("baseline", args.out)
    bench = data.load_benchmark(args.data_dir, 0, args.train_pickle, args.dev_pickle,
                                quick=args.quick)
    run.write_config(args)
    names = bench.class_names
    counts = inspect_data(run, bench)

    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    dummy = DummyClassifier(strategy="most_frequent").fit(flat(bench.x_train), bench.y_train)
    always = evaluation.evaluate(dummy.predict(flat(bench.x_dev)), None, bench.y_dev, names, y_true=bench.y_dev_true)
    run.metrics["data"] = counts
    run.record("always_majority", {"dev": always, "class": names[int(dummy.predict(flat(bench.x_dev[:1]))[0])]})

    recipe = imbalance.Recipe(model="small_cnn", optimizer="sgd", lr=args.lr, momentum=args.momentum,
                              batch_size=args.batch_size, epochs=args.epochs, standardize=False)
    model, result, _ = imbalance.train("none", bench.x_train, bench.y_train, recipe, seed=args.seed,
                                       verbose=0 if args.quiet else 2)
    splits = {"train": (bench.x_train, bench.y_train, bench.y_train_true),
              "dev": (bench.x_dev, bench.y_dev, bench.y_dev_true)}
    run.add_section(
        "## What the baseline does\n\n`small_cnn`, plain cross-entropy, SGD "
        f"(lr {args.lr}, momentum {args.momentum}), batch size {args.batch_size}, {args.epochs} epochs, "
        "no balancing. Compare its plain accuracy with the rule that always answers the most frequent class: "
        "only balanced accuracy (the mean of per-class recalls) tells them apart.")
    metrics = report.finish_trained_model(run, "small_cnn", model, result, splits, names, model_file="baseline.keras",
                                          extra={"recipe": recipe.to_dict()})
    rows = [("always " + run.metrics["runs"]["always_majority"]["class"], always)]
    if metrics:
        rows.append(("small_cnn", metrics["dev"]))
        predicted = evaluation.predict_labels(model, bench.x_dev)
        share = {c: float(np.mean(predicted == i)) for i, c in enumerate(names)}
        run.metrics["runs"]["small_cnn"]["dev_predicted_share"] = share
        run.record("small_cnn", run.metrics["runs"]["small_cnn"])
    table = [(name, labels, m["accuracy"], m["balanced_accuracy"], m["macro_f1"])
             for name, mm in rows for _, labels, m in report.label_sets({"dev": mm})]
    summary = markdown_table(["model", "dev labels", "accuracy", "balanced accuracy", "macro F1"], table)
    if metrics:
        summary += "\n\nShare of dev images predicted as each class: " + ", ".join(
            f"{c} {v:.1%}" for c, v in share.items()) + "."
    run.add_section("## Baseline against always-car\n\n" + summary)
    if not args.quiet:
        print(f"run directory: {run.path}")
    return 0


if __name__ == "__main__":
    cli.run(main)
