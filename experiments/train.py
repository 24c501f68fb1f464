"""Train one model on CIFAR-10 or the car/truck/cat benchmark and report it honestly.

    python -m experiments.train --data benchmark --model small_cnn --balance oversample
    python -m experiments.train --data cifar10 --model cifar_convnet \
        --augment horizontal_flip,width_shift_range=0.125,height_shift_range=0.125,fill_mode=constant
    python -m experiments.train --data cifar10 --classes airplane,bird,deer,dog,frog,horse,ship \
        --model cifar_convnet    # a start for the car/truck/cat studies' --init
    python -m experiments.train --data cifar10 --classes airplane,bird,deer,dog,frog,horse,ship \
        --model airbench --out runs/source    # the offline transfer source: label_noise --features

``--model airbench`` trains with airbench's own recipe (``keras_apml.recipe.AIRBENCH``:
Nesterov SGD, one-cycle, label smoothing, weight EMA, flips and 2-pixel
shifts); flags given still change it.

The run directory gets config.json, metrics.json (train, validation and test
splits; against true labels too on the benchmark), report.md, plots and the
trained model as model.keras: the weights of the epoch of highest validation
balanced accuracy, which the report names beside the last epoch's figure.
"""

import os
from pathlib import Path

import numpy as np

from experiments import _contract, _data, _flags, _output
from keras_apml.folders import VAL_FRACTION
from keras_apml.recipe import BALANCE, MODELS, Recipe

DEFAULT = Recipe(model="small_cnn", batch_size=64, epochs=20)  # --model: small_cnn on the benchmark, else cifar_convnet


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("train", __doc__.splitlines()[0])
    _flags.add_seed(p)
    _flags.add_benchmark(p)
    _flags.add_recipe(p, DEFAULT, models=tuple(m for m in MODELS if m != "linear"),  # linear: on features only
                      model_help="the network (default: small_cnn on the benchmark, cifar_convnet on CIFAR-10)")
    p.add_argument("--data", choices=("cifar10", "benchmark", "folder"), default=None,
                   help="CIFAR-10, the car/truck/cat benchmark built from it, or your own image folders at "
                        "--data-dir (default: folder when --data-dir is an image-folder tree other than CIFAR-10's, "
                        "else benchmark)")
    p.add_argument("--classes", default=None, metavar="NAMES",
                   help="--data cifar10: train on these classes only (comma-separated CIFAR-10 names), "
                        "e.g. to pretrain a model for the car/truck/cat studies' --init")
    p.add_argument("--weights", default="imagenet",
                   help="vgg19_transfer: imagenet, none, or a weights file")
    p.add_argument("--dropout", type=_flags.number(0, 1, high_open=True), default=None,
                   help="dropout rate of cifar_convnet and the VGG19 head (default: the model's own)")
    p.add_argument("--augment", default=None, metavar="SPEC",
                   help="online augmentation with ImageDataGenerator's names, e.g. "
                        "horizontal_flip,width_shift_range=0.125,fill_mode=constant (default: none)")
    p.add_argument("--balance", choices=BALANCE, default="none",
                   help="class_weight; oversample (balanced batches in tf.data); or offline "
                        "imbalanced-learn resampling: random_over, under, smote, over+under, smote+under (the names of "
                        "experiments.imbalance's strategies)")
    p.add_argument("--early-stopping", type=_flags.positive_int(100_000), default=None, metavar="PATIENCE",
                   help="stop once validation balanced accuracy has not improved for this many epochs (default: "
                        "off); either way the model keeps the weights of its best validation epoch")
    p.add_argument("--val-split", type=_flags.number(0, 1, low_open=True, high_open=True), default=VAL_FRACTION,
                   help="validation fraction of the training images (stratified, seeded; your own folders: of "
                        "the images left after the test split, unless the tree has val/)")
    p.add_argument("--relabel", default=None, metavar="CSV",
                   help="apply manual label corrections to the training labels: index,label rows, or path,label "
                        "for your own folders (label_noise's flagged_relabel.csv, reviewed)")
    _flags.add_tensorboard(p)
    args = p.parse_args(argv)
    args.data = args.data or _data.data_kind(args)
    if args.data != "folder":
        _flags.refuse_folder_flags(p, args)
    if args.classes is not None and args.data != "cifar10":
        p.error("--classes selects CIFAR-10 classes: it needs --data cifar10")
    if (args.train_pickle or args.dev_pickle) and args.data != "benchmark":
        p.error("--train-pickle and --dev-pickle replace the benchmark: they need --data benchmark")
    args.model = args.model or ("small_cnn" if args.data == "benchmark" else "cifar_convnet")  # folder: 32x32 and up
    if args.model != "vgg19_transfer" and args.weights != "imagenet":
        p.error("--weights is the VGG19 base's: it needs --model vgg19_transfer")
    return args


def recipe_of(args):
    """The training recipe the flags describe (checked: a bad value or augmentation spec is refused here)."""
    weights = None if args.weights.lower() == "none" else args.weights
    augment = args.augment or _flags.base_recipe(args, DEFAULT).augment  # airbench's own, unless given
    return _flags.resolve_recipe(args, DEFAULT, balance=args.balance, augment=augment, dropout=args.dropout,
                                 weights=weights)


def load_data(args):
    """Return a dict of splits -> (x, y, y_true or None), the class names and a data record."""
    from keras_apml import cifar10, label_files, stratified

    record = {"data": args.data}
    if args.data == "folder":
        return load_folder(args, record)
    if args.data == "benchmark":
        bench = _data.load_benchmark(args, draw=args.seed)
        x, y, y_true = bench.x_train, bench.y_train, bench.y_train_true
        test = (bench.x_dev, bench.y_dev, bench.y_dev_true)
        names, test_name = bench.class_names, "dev"
    else:
        (x, y), (x_test, y_test) = _data.load_cifar10(args)
        names = cifar10.CIFAR10_CLASSES
        if args.classes is not None:
            chosen = [c.strip() for c in args.classes.split(",") if c.strip()]
            x, y, _ = stratified.select_classes(x, y, chosen, names)
            x_test, y_test, names = stratified.select_classes(x_test, y_test, chosen, names)
            record["classes"] = list(names)
        x, y = _data.quick_subset(args, x, y, _flags.QUICK_TRAIN)
        x_test, y_test = _data.quick_subset(args, x_test, y_test, _flags.QUICK_TEST)
        y_true, test = None, (x_test, y_test, None)
        test_name = "test"
    if args.relabel:
        y, record["relabel"] = label_files.apply_relabel_file(y, args.relabel, names)
    train_idx, val_idx = stratified.validation_split(y, args.val_split, args.seed)
    pick = lambda idx: (x[idx], y[idx], None if y_true is None else y_true[idx])  # noqa: E731
    splits = {"train": pick(train_idx), "validation": pick(val_idx), test_name: test}
    record["sizes"] = {k: len(v[1]) for k, v in splits.items()}
    return splits, tuple(names), record


def load_folder(args, record):
    """Your own image folders: train, validation (split off train where the tree has no val/) and test splits."""
    from keras_apml import cifar10, label_files

    found, truth = _data.load_folder(args, val_fraction=args.val_split, seed=args.seed, streams=True)
    observed = {s: y for s, (_, y, _) in found.splits.items()}
    if args.relabel:  # corrections name images by path: those of train and validation, never test's
        parts = [s for s in ("train", "val") if s in found.splits]
        relabelled, record["relabel"] = label_files.apply_relabel_file(
            np.concatenate([observed[s] for s in parts]), args.relabel, found.class_names,
            paths=[p for s in parts for p in found.splits[s][2]])
        bounds = np.cumsum([len(observed[s]) for s in parts])[:-1]
        observed.update(zip(parts, np.split(relabelled, bounds)))
    names = {"train": "train", "val": "validation", "test": "test"}
    splits = {names[s]: (x, observed[s], None if truth is None else _data.folders_true(truth, paths, args))
              for s, (x, _, paths) in found.splits.items()}
    if args.quick:
        splits = {s: quick_split(args, *v, _flags.QUICK_TRAIN if s == "train" else _flags.QUICK_TEST)
                  for s, v in splits.items()}
    record.update(root=str(Path(args.data_dir or os.environ.get(cifar10.DATA_ENV)).expanduser().resolve()),
                  layout=found.layout, image_size=list(found.image_size), classes=list(found.class_names),
                  skipped=[{"path": p, "reason": r} for p, r in found.skipped],
                  sizes={k: len(v[1]) for k, v in splits.items()}, true_labels=args.true_labels,
                  streamed=found.streamed)
    return splits, found.class_names, record


def quick_split(args, x, y, y_true, n):
    """A stratified subset of at most ``n`` of one split's images (--quick), true labels kept in step."""
    from keras_apml import stratified

    idx = np.sort(stratified.stratified_indices(y, n, args.seed))
    return x[idx], y[idx], None if y_true is None else y_true[idx]


def describe_data(record):
    """The data in words, for the report: its name, or where your own folders are and what was read."""
    if record["data"] != "folder":
        return f"`{record['data']}`"
    h, w = record["image_size"]
    text = (f"your image folders `{record['root']}` ({record['layout']}; {len(record['classes'])} classes: "
            f"{', '.join(record['classes'])}; images at {h}x{w})")
    if record["skipped"]:
        shown = "; ".join(f"`{s['path']}` ({s['reason']})" for s in record["skipped"][:10])
        text += f"; {len(record['skipped'])} unreadable file(s) left out: {shown}"
    return text


# The experiments' own sections: each returns markdown for the run directory's ``add_section``.
def data_section(recipe_text, data_name, sizes, figures):
    """``experiments.train``: the recipe, the data's splits and their plots."""
    return (f"Recipe: {recipe_text}. Data: {data_name}, " + ", ".join(f"{k} {v}" for k, v in sizes.items())
            + " images.\n\n" + "\n".join(f"![{f}]({f})" for f in figures))


def main(argv=None):
    args = parse_args(argv)
    recipe = recipe_of(args)

    from keras_apml import checkpoints, plots, trainer

    splits, names, data_record = load_data(args)
    x_train, y_train, _ = splits["train"]
    model = trainer.build(recipe, x_train, len(names), args.seed)  # weights files load now, or fail now

    run = _output.open_run("train", args, data=data_record, recipe=recipe.to_dict())
    fig = plots.class_distribution({name: s[1] for name, s in splits.items()}, names, "Observed labels per split")
    figures = [run.save_figure(fig, "class_distribution.png"),
               run.save_figure(plots.sample_grid(x_train, y_train, names), "samples.png")]
    run.add_section("data", data_section(recipe.describe(), describe_data(data_record), data_record["sizes"],
                                         figures))
    callbacks = checkpoints.run_callbacks(run.path, early_stopping=args.early_stopping, keep_best=True,
                                          announce=lambda line: _output.say(args, line), tensorboard=args.tensorboard)
    result, y_fit, weights = trainer.fit(model, x_train, y_train, recipe, seed=args.seed,
                                         validation=splits["validation"][:2], callbacks=callbacks,
                                         verbose=_output.verbosity(args))
    _output.finish_trained_model(run, args.model, model, result, splits, names, model_file="model.keras",
                                 extra={"class_weight": weights, "fit_size": len(y_fit), "recipe": recipe.to_dict()})
    return _output.finish(run, args)


if __name__ == "__main__":
    _contract.run(main)
