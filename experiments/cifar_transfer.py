"""CIFAR-10: the 72,922-parameter conv net (raw, standardised, augmented) and a frozen VGG19 with a dense head.

    python -m experiments.cifar_transfer --data-dir /tmp/data/cifar10-jpeg
    python -m experiments.cifar_transfer --runs 3 --epochs 140
    python -m experiments.cifar_transfer --runs vgg19 --weights PATH.h5 --fine-tune

Validation is a stratified 80/20 split of the training set; the test set is
used only for the final numbers. The VGG19 base is frozen and deterministic,
so its outputs are computed once per image (and cached on disk) and the head
trains on them; ``--no-feature-cache`` trains end to end through the base.
Run again with the same ``--out`` to resume: finished runs are kept and an
interrupted one continues from its last finished epoch (BackupAndRestore).
"""

import numpy as np

from keras_apml import cli

CONV_RUNS = {"1": "1_raw", "2": "2_standardized", "3": "3_augmented"}
RUN_CHOICES = (*CONV_RUNS, "vgg19")
# Run 3's augmentation. Shifts move whole pixels (interpolation_order=0, as a random crop does): bilinear
# shifts blur the training images but not the test ones, and cost run 3 about a point (README).
AUGMENT = ("horizontal_flip,width_shift_range=0.125,height_shift_range=0.125,fill_mode=constant,cval=0,"
           "interpolation_order=0")
# Test accuracy the study reported on the original (lossless) CIFAR-10.
STUDY = {"1_raw": "70.81%", "2_standardized": "73.26%", "3_augmented": "82%",
         "vgg19": "73.31% (first head), 77.56% (best head)", "vgg19_finetune": "—"}
QUICK_TRAIN, QUICK_TEST = 500, 200
# The head's batches are cheap: 32 per train-function call cut the per-step overhead (benchmarks.transfer).
HEAD_STEPS_PER_EXECUTION = 32
# The head is a dense net on cached features: on 2 CPU cores a 40,000-image epoch takes about 8.5 s in batches
# of 64, 6 s of 128, 5 s of 256, and heads trained on transfer features at all three sizes tested alike
# (0.709-0.713; README). The conv net keeps the study's 64.
HEAD_BATCH_SIZE = 256


def parse_args(argv=None):
    """The command line of this experiment."""
    from keras_apml.training import SCHEDULES, STRATEGIES

    parser = cli.experiment_parser("cifar_transfer", __doc__.splitlines()[0])
    parser.add_argument("--runs", default="1,2,3,vgg19",
                        help="which runs: 1 raw, 2 standardised, 3 standardised+augmented, vgg19 (default: all)")
    parser.add_argument("--lr", type=float, default=1e-3, help="conv net Adam learning rate (default: 1e-3)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="step",
                        help="conv net schedule: step (x0.1 at 1/2 and 3/4 of the run, default), plateau, cosine")
    parser.add_argument("--dropout", type=float, default=0.25, help="conv net dropout rate (default: 0.25)")
    parser.add_argument("--weights", default="imagenet", help="VGG19 base weights: imagenet, none, or a .h5 file")
    parser.add_argument("--head-epochs", type=int, default=None, help="VGG19 head epochs (default: 10)")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="VGG19 head Adam learning rate (default: 1e-3)")
    parser.add_argument("--head-batch-size", type=cli.positive_int, default=HEAD_BATCH_SIZE,
                        help=f"VGG19 head batch size (default: {HEAD_BATCH_SIZE})")
    parser.add_argument("--no-feature-cache", action="store_true",
                        help="train the VGG19 head end to end through the frozen base, for comparison")
    parser.add_argument("--fine-tune", action="store_true",
                        help="then unfreeze VGG19 block4 and train on at a low learning rate")
    parser.add_argument("--fine-tune-epochs", type=int, default=None, help="fine-tuning epochs (default: 5)")
    parser.add_argument("--fine-tune-lr", type=float, default=1e-5, help="fine-tuning learning rate (default: 1e-5)")
    parser.add_argument("--distribute", choices=STRATEGIES, default="none",
                        help="MirroredStrategy over local GPUs (or CPUs), or MultiWorkerMirroredStrategy (TF_CONFIG)")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 on a GPU")
    parser.add_argument("--jit", action="store_true", help="XLA compilation on a GPU")
    args = parser.parse_args(argv)
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in args.runs if r not in RUN_CHOICES]
    if unknown or not args.runs:
        parser.error(f"--runs takes a comma-separated list of {', '.join(RUN_CHOICES)}; got {','.join(unknown)}")
    if not 0 <= args.dropout < 1:
        parser.error(f"--dropout must be in [0, 1), got {args.dropout}")
    args.epochs = args.epochs or (1 if args.quick else 140)
    args.head_epochs = args.head_epochs or (1 if args.quick else 10)
    args.fine_tune_epochs = args.fine_tune_epochs or (1 if args.quick else 5)
    args.batch_size = args.batch_size or 64
    args.weights = None if args.weights.lower() == "none" else args.weights
    return args


def load_splits(args):
    """Train/validation (stratified 80/20 of CIFAR train) and test, as ``{split: (x, y, None)}``."""
    from keras_apml import data

    (x, y), (x_test, y_test) = data.load_cifar10(args.data_dir)
    if args.quick:
        x, y = data.stratified_subset(x, y, QUICK_TRAIN, args.seed)
        x_test, y_test = data.stratified_subset(x_test, y_test, QUICK_TEST, args.seed)
    train_idx, val_idx = data.validation_split(y, 0.2, args.seed)
    return {"train": (x[train_idx], y[train_idx], None), "validation": (x[val_idx], y[val_idx], None),
            "test": (x_test, y_test, None)}


class Study:
    """One cifar_transfer invocation: its run directory, data, strategy and settings."""

    def __init__(self, args, run, splits, strategy, gpu):
        self.args, self.run, self.splits, self.strategy, self.gpu = args, run, splits, strategy, gpu
        from keras_apml.data import CIFAR10_CLASSES

        self.names = CIFAR10_CLASSES

    def verbose(self):
        """Keras's progress bar, or nothing with --quiet."""
        return 0 if self.args.quiet else 1

    def finish(self, name, model, result, extra=None, scorer=None):
        """Evaluate, save, record and report one run; only the test split gets confusion matrices."""
        from keras_apml import report

        report.finish_trained_model(self.run, name, model, result, self.splits, self.names, extra=extra,
                                    scorer=scorer, detail_splits=("test",))

    def fit(self, model, train, validation, epochs, tag, augmentation=None, callbacks=(), batch=None):
        """Train on ``train`` arrays ``(x, y)`` (images or cached features), validating on ``validation``."""
        from keras_apml import pipeline, training

        batch, seed = batch or self.args.batch_size, self.args.seed
        return training.fit(
            model, pipeline.make_dataset(*train, batch, shuffle=True, seed=seed, augmentation=augmentation),
            validation_data=pipeline.make_dataset(*validation, batch), epochs=epochs,
            callbacks=training.run_callbacks(self.run.path, tag=tag) + list(callbacks), verbose=self.verbose())

    def images(self, split):
        """``(x, y)`` of one split."""
        return self.splits[split][:2]

    def conv_run(self, name):
        """One cifar_convnet run: raw, standardised, or standardised and augmented."""
        from keras_apml import models, pipeline, training

        args = self.args
        x, y = self.images("train")
        training.set_seed(args.seed)
        steps = int(np.ceil(len(y) / args.batch_size))
        with self.strategy.scope():
            standardizer = models.fit_standardizer(x) if name != "1_raw" else None
            model = models.cifar_convnet(dropout=args.dropout, standardizer=standardizer)
            lr, schedule_callbacks = training.learning_rate_schedule(args.schedule, args.lr, args.epochs, steps)
            training.compile_model(model, training.make_optimizer("adam", lr), jit_compile=self.gpu["jit"])
        augmentation = pipeline.Augmentation.from_string(AUGMENT, seed=args.seed) if name == "3_augmented" else None
        result = self.fit(model, (x, y), self.images("validation"), args.epochs, name, augmentation,
                          schedule_callbacks)
        return self.finish(name, model, result, {"dropout": args.dropout,
                                                 "augmentation": augmentation and augmentation.to_config()})

    def vgg19_run(self):
        """The frozen VGG19 with its head trained on cached base outputs (or end to end)."""
        from keras_apml import features, models, training

        args = self.args
        training.set_seed(args.seed)
        with self.strategy.scope():
            model = models.vgg19_transfer(weights=args.weights)
            head = models.transfer_head(model)
            trained = model if args.no_feature_cache else head
            training.compile_model(trained, training.make_optimizer("adam", args.head_lr), jit_compile=self.gpu["jit"],
                                   steps_per_execution=HEAD_STEPS_PER_EXECUTION)
        extra = {"weights": args.weights or "none", "feature_cache": not args.no_feature_cache,
                 "batch_size": args.head_batch_size}
        scorer = None
        if args.no_feature_cache:
            result = self.fit(model, self.images("train"), self.images("validation"), args.head_epochs, "vgg19",
                              batch=args.head_batch_size)
        else:
            base = models.transfer_features(model)
            outputs, info = features.cached_outputs(
                base, {s: x for s, (x, _, _) in self.splits.items()}, key=features.weights_sha256(base))
            extra["timing"] = {"feature_cache": info["cache"], "feature_seconds": info["seconds"]}
            labels = {s: y for s, (_, y, _) in self.splits.items()}
            result = self.fit(head, (outputs["train"], labels["train"]),
                              (outputs["validation"], labels["validation"]), args.head_epochs, "vgg19",
                              batch=args.head_batch_size)
            # the head on cached base outputs predicts as the full model, without a second pass through the base
            scorer = (head, {s: (outputs[s], y, y_true) for s, (_, y, y_true) in self.splits.items()})
        self.finish("vgg19", model, result, extra, scorer)
        if args.fine_tune and not result.diverged:
            self.fine_tune(model)

    def fine_tune(self, model):
        """Unfreeze block4 of the base and train the whole model on at a low learning rate."""
        from keras_apml import training

        base = model.get_layer("vgg19_block4")
        base.trainable = True
        for layer in base.layers:
            layer.trainable = layer.name.startswith("block4")
        with self.strategy.scope():
            training.compile_model(model, training.make_optimizer("adam", self.args.fine_tune_lr),
                                   jit_compile=self.gpu["jit"])
        result = self.fit(model, self.images("train"), self.images("validation"), self.args.fine_tune_epochs,
                          "vgg19_finetune")
        self.finish("vgg19_finetune", model, result, {"unfrozen": "block4"})


def comparison_table(metrics):
    """The closing table: every run's accuracies beside the study's own test accuracy."""
    from keras_apml.runs import markdown_table

    rows = []
    for name, m in metrics["runs"].items():
        if "test" not in m:
            rows.append((name, None, None, None, None, m["training"]["status"], STUDY.get(name, "—")))
            continue
        rows.append((name, m["train"]["accuracy"], m["validation"]["accuracy"], m["test"]["accuracy"],
                     m["test"]["balanced_accuracy"], f"{m['training']['epochs_run']} epochs, "
                     f"{m['timing']['fit_seconds']:.0f} s", STUDY.get(name, "—")))
    return "## Comparison\n\n" + markdown_table(
        ["run", "train acc", "val acc", "test acc", "test balanced acc", "training", "study test acc"], rows) + (
        "\n\nThe study's figures are on the original CIFAR-10; JPEG copies score a little lower.")


def main(argv=None):
    args = parse_args(argv)

    from keras_apml import plots, training
    from keras_apml.runs import RunDir, progress

    gpu = training.gpu_options(args.mixed_precision, args.jit)
    strategy = training.distribution_strategy(args.distribute)
    run = RunDir.create("cifar_transfer", args.out)
    splits = load_splits(args)
    run.write_config(args, gpu=gpu, replicas=strategy.num_replicas_in_sync,
                     sizes={k: len(v[1]) for k, v in splits.items()})
    study = Study(args, run, splits, strategy, gpu)
    run.add_section(f"CIFAR-10, {len(splits['train'][1])} train / {len(splits['validation'][1])} validation / "
                    f"{len(splits['test'][1])} test images; {strategy.num_replicas_in_sync} replica(s); "
                    f"mixed precision {gpu['mixed_precision']}, XLA {gpu['jit']}.\n\n![samples]("
                    + run.save_figure(plots.sample_grid(splits["train"][0], splits["train"][1], study.names),
                                      "samples.png") + ")")
    names = [CONV_RUNS.get(r, r) for r in args.runs]
    for i, name in enumerate(names, start=1):
        epochs = f"head {args.head_epochs}" if name == "vgg19" else args.epochs
        if name in run.metrics["runs"] and run.file(f"{name}.keras").is_file():
            progress(i, len(names), f"{name}: finished in an earlier call with this --out, kept", args.quiet)
            continue
        progress(i, len(names), f"{name} ({epochs} epochs)", args.quiet)
        study.vgg19_run() if name == "vgg19" else study.conv_run(name)
    run.add_section(comparison_table(run.metrics))
    if not args.quiet:
        print(f"run directory: {run.path}")
    return 0


if __name__ == "__main__":
    cli.run(main)
