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

from experiments import _contract, _data, _flags, _output
from keras_apml import progress, report
from keras_apml.folders import VAL_FRACTION
from keras_apml.recipe import BALANCE, MODELS, Recipe

DEFAULT = Recipe(model="small_cnn", batch_size=64, epochs=20)  # --model: small_cnn on the benchmark, else cifar_convnet


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("train", __doc__.splitlines()[0])
    _flags.add_seed(p)
    _flags.add_benchmark(p, ("cifar10", "benchmark", "folder"),
                         "CIFAR-10, the car/truck/cat benchmark built from it, or your own image folders at --data-dir "
                         f"(default: {_flags.DATA_DEFAULT})")
    _flags.add_recipe(p, DEFAULT, models=tuple(m for m in MODELS if m != "linear"),  # linear: on features only
                      model_help="the network (default: small_cnn on the benchmark, cifar_convnet on CIFAR-10)")
    p.add_argument("--classes", default=None, metavar="NAMES",
                   help="--data cifar10: train on these classes only (comma-separated CIFAR-10 names), "
                        "e.g. to pretrain a model for the car/truck/cat studies' --init")
    p.add_argument("--weights", default="imagenet",
                   help="vgg19_transfer: imagenet, none, or a weights file")
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
                        "for your own folders, a label of drop leaving the image out (label_noise's "
                        "flagged_relabel.csv edited, or experiments.review's reviewed_relabel.csv)")
    _flags.add_tensorboard(p)
    args = p.parse_args(argv)
    _data.choose_data(p, args)
    if args.classes is not None and args.data != "cifar10":
        p.error("--classes selects CIFAR-10 classes: it needs --data cifar10")
    args.model = args.model or ("small_cnn" if args.data == "benchmark" else "cifar_convnet")  # folder: 32x32 and up
    if args.model != "vgg19_transfer" and args.weights != "imagenet":
        p.error("--weights is the VGG19 base's: it needs --model vgg19_transfer")
    return args


def recipe_of(args):
    """The training recipe the flags describe (checked: a bad value or augmentation spec is refused here)."""
    weights = None if args.weights.lower() == "none" else args.weights
    augment = args.augment or _flags.base_recipe(args, DEFAULT).augment  # airbench's own, unless given
    return _flags.resolve_recipe(args, DEFAULT, balance=args.balance, augment=augment, weights=weights)


def load_data(args):
    """The run's data (train, validation and test, or the benchmark's dev) and a record of it for metrics.json."""
    data = _data.load(args, args.data, seed=args.seed, validation=args.val_split, streams=args.data == "folder")
    record = {"data": args.data, **data.notes}
    if args.data == "folder":
        record.update(root=data.source, layout=data.layout, image_size=list(data.image_size),
                      classes=list(data.class_names), skipped=[{"path": p, "reason": r} for p, r in data.skipped],
                      true_labels=args.true_labels, labels=args.labels, streamed=data.streamed)
    record["sizes"] = {name: len(split) for name, split in data.splits.items()}
    return data, record


def describe_data(record):
    """The data in words, for the report: its name, or where your own folders are and what was read."""
    relabel = record.get("relabel")
    changed = (f"; training labels corrected by `{relabel['relabel_file']}` "
               f"({report.plural(relabel['labels_changed'], 'label')} changed, "
               f"{report.plural(relabel['dropped'], 'image')} dropped)") if relabel else ""
    if record["data"] != "folder":
        return f"`{record['data']}`{changed}"
    h, w = record["image_size"]
    text = (f"your image folders `{record['root']}` ({record['layout']}; {len(record['classes'])} classes: "
            f"{', '.join(record['classes'])}; images at {h}x{w})")
    if record.get("labels"):
        text += f"; the observed labels from `{record['labels']}`, not the class folders"
    if record["skipped"]:
        shown = "; ".join(f"`{s['path']}` ({s['reason']})" for s in record["skipped"][:10])
        text += f"; {len(record['skipped'])} unreadable file(s) left out: {shown}"
    return text + changed


# The experiments' own sections: each returns markdown for the run directory's ``add_section``.
def data_section(recipe_text, data_name, sizes, figures):
    """``experiments.train``: the recipe, the data's splits and their plots."""
    return (f"Recipe: {recipe_text}. Data: {data_name}, " + ", ".join(f"{k} {v}" for k, v in sizes.items())
            + " images.\n\n" + "\n".join(f"![{f}]({f})" for f in figures))


def main(argv=None):
    args = parse_args(argv)
    recipe = recipe_of(args)

    from keras_apml import checkpoints, plots, trainer

    data, data_record = load_data(args)
    names, train = data.class_names, data["train"]
    model = trainer.build(recipe, train.x, len(names), args.seed)  # weights files load now, or fail now

    run = _output.open_run("train", args, data=data_record, recipe=recipe.to_dict())
    fig = plots.class_distribution({name: s.y for name, s in data.splits.items()}, names, "Observed labels per split")
    figures = [run.save_figure(fig, "class_distribution.png"),
               run.save_figure(plots.sample_grid(train.x, train.y, names), "samples.png")]
    run.add_section("data", data_section(recipe.describe(), describe_data(data_record), data_record["sizes"],
                                         figures))
    step = progress.StudyProgress(1, args.quiet, epochs=[recipe.epochs])  # a line per epoch, with the time left
    step(f"{args.model} ({report.plural(recipe.epochs, 'epoch')})", name=args.model)
    callbacks = checkpoints.run_callbacks(run.path, early_stopping=args.early_stopping, keep_best=True,
                                          announce=lambda line: _output.say(args, line), tensorboard=args.tensorboard,
                                          on_epoch=lambda done: step.epoch(done, recipe.epochs))
    result, y_fit, weights = trainer.fit(model, train.x, train.y, recipe, seed=args.seed,
                                         validation=(data["validation"].x, data["validation"].y), callbacks=callbacks,
                                         verbose=_output.verbosity(args))
    _output.finish_trained_model(run, args.model, model, result, data.splits, names, model_file="model.keras",
                                 extra={"class_weight": weights, "fit_size": len(y_fit), "recipe": recipe.to_dict()})
    return _output.finish(run, args)


if __name__ == "__main__":
    _contract.run(main)
