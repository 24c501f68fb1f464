"""Train one model on CIFAR-10 or the car/truck/cat benchmark and report it honestly.

    python -m experiments.train --data benchmark --model small_cnn --balance oversample
    python -m experiments.train --data cifar10 --model cifar_convnet --standardize \
        --augment horizontal_flip,width_shift_range=0.125,height_shift_range=0.125,fill_mode=constant
    python -m experiments.train --data cifar10 --classes airplane,bird,deer,dog,frog,horse,ship \
        --model cifar_convnet --standardize    # a start for the car/truck/cat studies' --init

The run directory gets config.json, metrics.json (train, validation and test
splits; against true labels too on the benchmark), report.md, plots and the
trained model as model.keras.
"""

import numpy as np

from keras_apml import cli

QUICK_TRAIN, QUICK_TEST = 1000, 500


def parse_args(argv=None):
    """The command line of this experiment."""
    from keras_apml.pipeline import BALANCE
    from keras_apml.training import OPTIMIZERS, SCHEDULES

    parser = cli.benchmark_options(cli.experiment_parser("train", __doc__.splitlines()[0]))
    parser.add_argument("--data", choices=("cifar10", "benchmark"), default="benchmark",
                        help="CIFAR-10, or the car/truck/cat benchmark built from it (default)")
    parser.add_argument("--model", choices=("small_cnn", "cifar_convnet", "vgg19_transfer"), default=None,
                        help="default: small_cnn on the benchmark, cifar_convnet on CIFAR-10")
    parser.add_argument("--classes", default=None, metavar="NAMES",
                        help="--data cifar10: train on these classes only (comma-separated CIFAR-10 names), "
                             "e.g. to pretrain a model for the car/truck/cat studies' --init")
    parser.add_argument("--weights", default="imagenet", help="vgg19_transfer: imagenet, none, or a weights file")
    parser.add_argument("--standardize", action="store_true",
                        help="per-channel z-score (a Normalization layer adapted on the training split)")
    parser.add_argument("--augment", default=None, metavar="SPEC",
                        help="online augmentation with ImageDataGenerator's names, e.g. "
                             "horizontal_flip,width_shift_range=0.125,fill_mode=constant")
    parser.add_argument("--balance", choices=BALANCE, default="none",
                        help="class_weight; oversample (balanced batches in tf.data); or offline "
                             "imbalanced-learn resampling: over, under, smote, over+under, smote+under")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay (default: none)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="constant")
    parser.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                        help="stop when validation loss stalls this many epochs (0: off)")
    parser.add_argument("--save-best", action="store_true",
                        help="also keep the model of lowest validation loss as best.keras (ModelCheckpoint)")
    parser.add_argument("--val-split", type=float, default=0.2, help="validation fraction of train (default: 0.2)")
    parser.add_argument("--relabel", default=None, metavar="CSV",
                        help="apply manual label corrections (index,label) to the training labels")
    args = parser.parse_args(argv)
    if not 0.0 < args.val_split < 1.0:
        parser.error(f"--val-split must lie in (0, 1), got {args.val_split}")
    if args.classes is not None and args.data != "cifar10":
        parser.error("--classes selects CIFAR-10 classes: it needs --data cifar10")
    if args.augment:
        from keras_apml.augmentation import Augmentation

        Augmentation.from_string(args.augment)  # refuse a bad spec before anything runs
    args.model = args.model or ("small_cnn" if args.data == "benchmark" else "cifar_convnet")
    args.epochs = args.epochs or (1 if args.quick else 20)
    args.batch_size = args.batch_size or 64
    return args


def load_data(args):
    """Return a dict of splits -> (x, y, y_true or None), the class names and a data record."""
    from keras_apml import data

    record = {"data": args.data}
    if args.data == "benchmark":
        bench = data.load_benchmark(args.data_dir, args.seed, args.train_pickle, args.dev_pickle,
                                    quick=args.quick)
        x, y, y_true = bench.x_train, bench.y_train, bench.y_train_true
        test = (bench.x_dev, bench.y_dev, bench.y_dev_true)
        names, test_name = bench.class_names, "dev"
    else:
        (x, y), (x_test, y_test) = data.load_cifar10(args.data_dir)
        names = data.CIFAR10_CLASSES
        if args.classes is not None:
            chosen = [c.strip() for c in args.classes.split(",") if c.strip()]
            x, y, _ = data.select_classes(x, y, chosen, names)
            x_test, y_test, names = data.select_classes(x_test, y_test, chosen, names)
            record["classes"] = list(names)
        if args.quick:
            x, y = data.stratified_subset(x, y, QUICK_TRAIN, args.seed)
            x_test, y_test = data.stratified_subset(x_test, y_test, QUICK_TEST, args.seed)
        y_true, test = None, (x_test, y_test, None)
        test_name = "test"
    if args.relabel:
        y, record["relabel"] = data.apply_relabel_file(y, args.relabel, names)
    train_idx, val_idx = data.validation_split(y, args.val_split, args.seed)
    pick = lambda idx: (x[idx], y[idx], None if y_true is None else y_true[idx])  # noqa: E731
    splits = {"train": pick(train_idx), "validation": pick(val_idx), test_name: test}
    record["sizes"] = {k: len(v[1]) for k, v in splits.items()}
    return splits, tuple(names), record


def build_model(args, x_train, num_classes):
    """The chosen model, standardised on the training split when asked."""
    from keras_apml import models

    if args.model == "vgg19_transfer":
        weights = None if args.weights.lower() == "none" else args.weights
        return models.vgg19_transfer(weights=weights, num_classes=num_classes)
    standardizer = models.fit_standardizer(x_train) if args.standardize else None
    return models.BUILDERS[args.model](num_classes=num_classes, standardizer=standardizer)


def main(argv=None):
    args = parse_args(argv)

    from keras_apml import pipeline, plots, report, training
    from keras_apml.runs import RunDir

    run = RunDir.create("train", args.out)
    training.set_seed(args.seed)
    splits, names, data_record = load_data(args)
    run.write_config(args, data=data_record)
    x_train, y_train, _ = splits["train"]
    fig = plots.class_distribution({name: s[1] for name, s in splits.items()}, names, "Observed labels per split")
    figures = [run.save_figure(fig, "class_distribution.png"),
               run.save_figure(plots.sample_grid(x_train, y_train, names), "samples.png")]

    model = build_model(args, x_train, len(names))
    augmentation = pipeline.Augmentation.from_string(args.augment, seed=args.seed) if args.augment else None
    train_ds, steps, weights, y_fit = pipeline.training_dataset(x_train, y_train, args.balance, args.batch_size,
                                                                seed=args.seed, augmentation=augmentation)
    steps_per_epoch = steps or int(np.ceil(len(y_fit) / args.batch_size))
    lr, schedule_callbacks = training.learning_rate_schedule(args.schedule, args.lr, args.epochs, steps_per_epoch)
    training.compile_model(model, training.make_optimizer(args.optimizer, lr, args.momentum, args.weight_decay))
    x_val, y_val, _ = splits["validation"]
    callbacks = training.run_callbacks(run.path, early_stopping=args.early_stopping,
                                       save_best=args.save_best) + schedule_callbacks
    result = training.fit(model, train_ds, epochs=args.epochs, steps_per_epoch=steps, class_weight=weights,
                          validation_data=pipeline.make_dataset(x_val, y_val, args.batch_size),
                          callbacks=callbacks, verbose=0 if args.quiet else 1)

    run.add_section(f"Model `{args.model}` on `{args.data}` (balance: {args.balance}, "
                    f"augment: {args.augment or 'none'}, standardize: {args.standardize}).\n\n"
                    + "\n".join(f"![{f}]({f})" for f in figures))
    report.finish_trained_model(run, args.model, model, result, splits, names, model_file="model.keras",
                                extra={"class_weight": weights, "fit_size": len(y_fit)})
    if not args.quiet:
        print(f"run directory: {run.path}")
    return 0


if __name__ == "__main__":
    cli.run(main)
