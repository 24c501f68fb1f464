"""CIFAR-10: the 72,922-parameter conv net (raw, standardised, augmented), a frozen VGG19 with a head, airbench.

    python -m experiments.cifar_transfer --data-dir /tmp/data/cifar10-jpeg
    python -m experiments.cifar_transfer --runs 3 --epochs 140
    python -m experiments.cifar_transfer --runs 1,2,3 --recipe fast
    python -m experiments.cifar_transfer --runs airbench
    python -m experiments.cifar_transfer --runs vgg19 --weights PATH.h5 --fine-tune

Validation is a stratified 80/20 split of the training set (``--val-split``;
0: every training image trains and each run keeps its last epoch's weights,
as airbench does); the test set is used only for the final numbers. The VGG19 base is frozen and deterministic,
so its outputs are computed once per image (and cached on disk) and the head
trains on them; ``--no-feature-cache`` trains end to end through the base.
Run again with the same ``--out`` to resume: finished runs are kept and an
interrupted one continues from its last finished epoch. Every run trained on images
also reports its test accuracy with airbench's test-time augmentation
(``keras_apml.evaluation.predict_tta``): flips (level 1) and flips with
one-pixel translations (level 2), each beside the plain figure, never in its place.
"""

from experiments import _contract, _data, _flags, _output
from keras_apml import progress, report
from keras_apml.folders import VAL_FRACTION
from keras_apml.recipe import (
    AIRBENCH,
    CIFAR_AUGMENT,
    CIFAR_CONVNET,
    CIFAR_CONVNET_FAST,
    DISTRIBUTE,
    VGG19_HEAD,
    flag_fields,
)

CONV_RUNS = {"1": "1_raw", "2": "2_standardized", "3": "3_augmented"}
RUN_CHOICES = (*CONV_RUNS, "vgg19", "airbench")
CONV_RECIPES = {"study": CIFAR_CONVNET, "fast": CIFAR_CONVNET_FAST}  # the study's recipe, or what airbench taught
# The shared recipe flags that change the conv net runs only (--epochs and --batch-size size airbench's too;
# --whiten-bias-epochs is airbench's alone).
AIRBENCH_FLAGS = ("whiten_bias_epochs",)
CONV_FLAGS = tuple(f.name for f in flag_fields() if f.name not in ("model", "epochs", "batch_size", *AIRBENCH_FLAGS))
AUGMENT, HEAD = CIFAR_AUGMENT, VGG19_HEAD
# The defaults the recipes do not hold, then what --quick changes.
DEFAULTS = {"head_epochs": HEAD.epochs, "fine_tune_epochs": 5, "fine_tune_lr": 1e-5}
QUICK = {"head_epochs": 1, "fine_tune_epochs": 1}
# Test accuracy the study reported on the original (lossless) CIFAR-10.
STUDY = {"1_raw": "70.81%", "2_standardized": "73.26%", "3_augmented": "82%",
         "vgg19": "73.31% (first head), 77.56% (best head)", "vgg19_finetune": "—", "airbench": "—"}


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("cifar_transfer", __doc__.splitlines()[0])
    _flags.add_seed(p, "seed of the validation split and of every training")
    p.add_argument("--val-split", type=_flags.number(0, 1, high_open=True), default=VAL_FRACTION,
                   help="validation fraction of the training images (stratified, seeded; each run keeps the weights "
                        "of its best validation epoch); 0: every training image trains and each run keeps its last "
                        "epoch's weights, as airbench does")
    p.add_argument("--runs", type=_flags.names_list(RUN_CHOICES, "--runs"), default=["1", "2", "3", "vgg19"],
                   help="which runs: 1 raw, 2 standardised, 3 standardised+augmented, vgg19, airbench "
                        "(default: 1,2,3,vgg19)")
    study, fast = CIFAR_CONVNET, CIFAR_CONVNET_FAST
    p.add_argument("--recipe", choices=CONV_RECIPES, default="study",
                   help=f"the conv net runs' recipe: the study's (Adam, step schedule, batch {study.batch_size}, "
                        f"{study.epochs} epochs) or fast (one-cycle, batch {fast.batch_size}, label smoothing, weight "
                        f"EMA, {fast.epochs} epochs); docs/RESULTS.md compares them")
    _flags.add_recipe(p, CIFAR_CONVNET, leave_out=("model", "no_standardize", "init"),
                      about="the conv net runs' recipe (--recipe; the study's defaults shown), which the flags given "
                            f"change; --epochs and --batch-size size the airbench run too (its own: {AIRBENCH.epochs} "
                            f"epochs, batches of {AIRBENCH.batch_size}); the VGG19 head has its own flags")
    p.add_argument("--weights", default="imagenet", help="VGG19 base weights: imagenet, none, or a .h5 file")
    p.add_argument("--vgg19-size", type=_flags.positive_int(512), default=None, metavar="SIZE",
                   help="resize the images to SIZExSIZE inside the VGG19 model (32..512, e.g. 96; default: 32x32 as "
                        "they come): ImageNet features of 32x32 images are weak; larger inputs cost (SIZE/32)^2 "
                        "as much")
    p.add_argument("--head-epochs", type=_flags.positive_int(100_000), default=None,
                   help=f"VGG19 head epochs (default: {DEFAULTS['head_epochs']}; --quick: {QUICK['head_epochs']})")
    p.add_argument("--head-lr", type=_flags.number(0, low_open=True), default=HEAD.lr,
                   help="VGG19 head Adam learning rate")
    p.add_argument("--head-batch-size", type=_flags.positive_int(2 ** 20), default=HEAD.batch_size,
                   help="VGG19 head batch size")
    p.add_argument("--no-feature-cache", action="store_true",
                   help="train the VGG19 head end to end through the frozen base, for comparison")
    p.add_argument("--fine-tune", action="store_true",
                   help="then unfreeze VGG19 block4 and train on at a low learning rate")
    p.add_argument("--fine-tune-epochs", type=_flags.positive_int(100_000), default=None,
                   help=f"fine-tuning epochs (default: {DEFAULTS['fine_tune_epochs']}; --quick: "
                        f"{QUICK['fine_tune_epochs']})")
    p.add_argument("--fine-tune-lr", type=_flags.number(0, low_open=True), default=None,
                   help=f"fine-tuning learning rate (default: {DEFAULTS['fine_tune_lr']:g})")
    p.add_argument("--distribute", choices=DISTRIBUTE, default="none",
                   help="MirroredStrategy over local GPUs (or CPUs); multiworker is refused while Keras 3 cannot "
                        "train under MultiWorkerMirroredStrategy (keras-team/keras#20585)")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 on a GPU")
    p.add_argument("--jit", action="store_true", help="XLA compilation on a GPU")
    _flags.add_tensorboard(p)
    args = p.parse_args(argv)
    conv_runs = [r for r in args.runs if r in CONV_RUNS]
    for runs, flags, what in ((conv_runs or "airbench" in args.runs, ("epochs",), "the conv net and airbench runs"),
                              (conv_runs, ("recipe", *CONV_FLAGS), "the conv net runs"),
                              ("airbench" in args.runs, AIRBENCH_FLAGS, "the airbench run"),
                              ("vgg19" in args.runs, ("weights", "vgg19_size", "head_epochs", "head_lr",
                                                      "head_batch_size", "no_feature_cache", "fine_tune"),
                               "the vgg19 run")):
        unused = _flags.given(p, args, flags)
        if unused and not runs:
            p.error(f"{', '.join(unused)} concern{'s' if len(unused) == 1 else ''} {what}, which --runs leaves out")
    if not args.fine_tune:
        unused = _flags.given(p, args, ("fine_tune_epochs", "fine_tune_lr"))
        if unused:
            p.error(f"{', '.join(unused)} concern{'s' if len(unused) == 1 else ''} fine-tuning: add --fine-tune")
    return _flags.resolve_defaults(args, DEFAULTS, (args.quick, QUICK))


def recipes(args):
    """The recipe of every run asked for (each checked): ``{run name: Recipe}``."""
    given = {name: getattr(args, name) for name in ("epochs", "batch_size", *AIRBENCH_FLAGS)}  # before resolving

    def sized(recipe):  # --epochs, --batch-size and --whiten-bias-epochs where given
        return recipe.replace(epochs=given["epochs"] or (1 if args.quick else recipe.epochs),
                              batch_size=given["batch_size"] or recipe.batch_size,
                              whiten_bias_epochs=given["whiten_bias_epochs"] or recipe.whiten_bias_epochs)

    args.whiten_bias_epochs = None  # the conv nets have no whitening layer
    conv = _flags.resolve_recipe(args, CONV_RECIPES[args.recipe])
    args.whiten_bias_epochs = given["whiten_bias_epochs"]  # recorded as given
    out = {"1_raw": conv.replace(standardize=False), "2_standardized": conv,
           "3_augmented": conv.replace(augment=AUGMENT), "airbench": sized(AIRBENCH)}
    weights = None if args.weights.lower() == "none" else args.weights
    out["vgg19"] = HEAD.replace(lr=args.head_lr, batch_size=args.head_batch_size, epochs=args.head_epochs,
                                weights=weights, upsample=args.vgg19_size)
    out["vgg19_finetune"] = out["vgg19"].replace(lr=args.fine_tune_lr, epochs=args.fine_tune_epochs,
                                                 batch_size=given["batch_size"] or CIFAR_CONVNET.batch_size)
    return {name: r for name, r in out.items()
            if name in [CONV_RUNS.get(k, k) for k in args.runs] or (name == "vgg19_finetune" and args.fine_tune)}


def load_data(args):
    """CIFAR-10: train and validation (a stratified split of CIFAR train by --val-split, with --seed; none at 0) and
    test."""
    return _data.load(args, "cifar10", seed=args.seed, validation=args.val_split)


class Study:
    """One cifar_transfer invocation: its run directory, data, recipes, distribution and GPU settings."""

    def __init__(self, args, run, data, recipes, distribution, gpu, step):
        self.args, self.run, self.data, self.recipes, self.distribution, self.gpu = args, run, data, recipes, \
            distribution, gpu
        self.names, self.step = data.class_names, step  # step: the study's progress (progress.StudyProgress)

    def images(self, split):
        """``(x, y)`` of one split; None for a validation split there is not (--val-split 0)."""
        if split not in self.data.splits:
            return None
        return self.data[split].x, self.data[split].y

    def fit(self, model, name, train, validation, **kwargs):
        """Train ``model`` with run ``name``'s recipe on ``train`` arrays (images or cached features), keeping its best
        validation epoch, or without ``validation`` its last."""
        from keras_apml import checkpoints, trainer

        callbacks = checkpoints.run_callbacks(self.run.path, keep_best=validation is not None, tag=name,
                                              announce=lambda line: _output.say(self.args, line),
                                              tensorboard=self.args.tensorboard,
                                              on_epoch=lambda done: self.step.epoch(done, self.recipes[name].epochs))
        result, _, _ = trainer.fit(model, *train, self.recipes[name], seed=self.args.seed, validation=validation,
                                   callbacks=callbacks, verbose=_output.verbosity(self.args),
                                   distribution=self.distribution, jit_compile=self.gpu["jit"], **kwargs)
        return result

    def finish(self, name, model, result, extra=None, scorer=None):
        """Evaluate, save, record and report one run; only the test split gets confusion matrices."""

        extra = {"recipe": self.recipes[name].to_dict(), **(extra or {})}
        _output.finish_trained_model(self.run, name, model, result, self.data.splits, self.names, extra=extra,
                                     scorer=scorer, detail_splits=("test",), tag=name)

    def conv_run(self, name):
        """One run trained on the images: the conv net raw, standardised, or standardised and augmented; airbench."""
        from keras_apml import trainer

        x, y = self.images("train")
        with self.distribution.scope():
            model = trainer.build(self.recipes[name], x, len(self.names), self.args.seed)
        result = self.fit(model, name, (x, y), self.images("validation"))
        extra = None if result.diverged else {"test_flip_tta": self.tta(model, 1),
                                              "test_tta_level2": self.tta(model, 2)}
        self.finish(name, model, result, extra)

    def tta(self, model, level):
        """Test accuracy and balanced accuracy with airbench's test-time augmentation of ``level`` (a figure of its
        own, beside the plain one)."""
        from keras_apml import evaluation

        x, y = self.images("test")
        m = evaluation.classification_metrics(y, evaluation.predict_labels(evaluation.predict_tta(model, x, level)),
                                              self.names)
        return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"]}

    def vgg19_run(self, model):
        """The frozen VGG19 (built before the run directory opened) with its head trained on cached base outputs."""
        from keras_apml import features, models

        args = self.args
        extra = {"weights": args.weights, "feature_cache": not args.no_feature_cache}
        scorer = None
        if args.no_feature_cache:
            result = self.fit(model, "vgg19", self.images("train"), self.images("validation"))
        else:
            base = models.transfer_features(model)
            _output.say(args, "vgg19: computing the frozen base's outputs for every image once (cached on disk)")
            images = {name: split.x for name, split in self.data.splits.items()}
            size = args.vgg19_size or 32  # the weights and the size the images are resized to make the outputs
            outputs, info = features.cached_outputs(
                base, images, key=f"{features.weights_sha256(base)}:{size}",
                about=f"VGG19 base outputs (weights {args.weights}, {size}x{size} inputs) on CIFAR-10 "
                      + ", ".join(f"{s} {len(x)}" for s, x in images.items()),
                verbose=_output.verbosity(args))
            extra["timing"] = {"feature_cache": info["cache"], "feature_seconds": info["seconds"]}
            head = models.transfer_head(model)  # shares its layers, so training it trains the full model
            validation = self.images("validation") and (outputs["validation"], self.data["validation"].y)
            result = self.fit(head, "vgg19", (outputs["train"], self.data["train"].y), validation)
            # the head on cached base outputs predicts as the full model, without a second pass through the base
            scorer = (head, {name: split.replace(x=outputs[name]) for name, split in self.data.splits.items()})
        self.finish("vgg19", model, result, extra, scorer)

    def fine_tune(self, model):
        """Unfreeze block4 of the base and train the whole model on at a low learning rate."""
        base = model.get_layer("vgg19_block4")
        base.trainable = True
        for layer in base.layers:
            layer.trainable = layer.name.startswith("block4")
        result = self.fit(model, "vgg19_finetune", self.images("train"), self.images("validation"))
        self.finish("vgg19_finetune", model, result, {"unfrozen": "block4"})


def cifar_data_section(sizes, replicas, gpu, samples_png, recipes):
    """``experiments.cifar_transfer``: the splits, the devices and every run's recipe."""
    validation = (f"{sizes['validation']} validation" if "validation" in sizes else
                  "no validation (--val-split 0: each run keeps its last epoch)")
    return (f"CIFAR-10, {sizes['train']} train / {validation} / {sizes['test']} test images; "
            f"{replicas} replica(s); mixed precision {gpu['mixed_precision']}, XLA {gpu['jit']}.\n\n"
            f"{report.recipes_table(recipes)}\n\n![samples]({samples_png})")


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
            rows.append((label, training["status"], seconds, *[None] * 6, study.get(name, "—")))
            continue
        ttas = [m.get(key) for key in ("test_flip_tta", "test_tta_level2")]
        rows.append((label, epochs, seconds, percent(m["train"]["accuracy"]),
                     percent(m["validation"]["accuracy"]) if "validation" in m else "—",
                     percent(m["test"]["accuracy"]), percent(m["test"]["balanced_accuracy"]),
                     *[percent(tta["accuracy"]) if tta else "—" for tta in ttas], study.get(name, "—")))
    table = report.markdown_table(["run", "epochs (kept)", "time", "train acc", "val acc", "test acc",
                                   "test balanced acc", "test acc, flip TTA", "test acc, TTA level 2",
                                   "study test acc"], rows)
    notes.append("TTA as airbench's (keras_apml.evaluation.predict_tta): flip, each test image with its mirror "
                 "image; level 2, those and the two one-pixel translations of each, weighted 1/4, 1/4, 1/8 x 4; "
                 "the views' log-probabilities are averaged. The plain test accuracy is without it.")
    notes.append("The study's figures are on the original CIFAR-10; JPEG copies score a little lower.")
    return "## Comparison\n\n" + table + "\n\n" + " ".join(notes)


def main(argv=None):
    args = parse_args(argv)
    planned = recipes(args)

    from keras_apml import devices, plots, trainer

    distribution = devices.distribution_strategy(args.distribute)  # refused first: its error line is the only line
    gpu = devices.gpu_options(args.mixed_precision, args.jit)
    vgg19 = None
    if "vgg19" in planned:  # its weights load now (or fail now), before the data is read and the conv nets' hours
        with distribution.scope():
            vgg19 = trainer.build(planned["vgg19"], None, 10, args.seed)
    data = load_data(args)

    run = _output.open_run("cifar_transfer", args, gpu=gpu, replicas=distribution.num_replicas_in_sync,
                           sizes={name: len(split) for name, split in data.splits.items()},
                           recipes={k: r.to_dict() for k, r in planned.items()})
    names = [CONV_RUNS.get(r, r) for r in args.runs] + ["vgg19_finetune"] * args.fine_tune  # after its head
    kept = {name: run.recorded(name) is not None and run.file(f"{name}.keras").is_file() for name in names}
    step = progress.StudyProgress(len(names), args.quiet,
                                  epochs=[0 if kept[name] else planned[name].epochs for name in names])
    study = Study(args, run, data, planned, distribution, gpu, step)
    samples = run.save_figure(plots.sample_grid(data["train"].x, data["train"].y, study.names), "samples.png")
    run.add_section("data", cifar_data_section({name: len(split) for name, split in data.splits.items()},
                                               distribution.num_replicas_in_sync, gpu, samples, planned))
    for name in names:
        epochs = planned[name].epochs
        what = {"vgg19": "head ", "vgg19_finetune": "block4 unfrozen, "}.get(name, "")
        step(f"{name} ({what}{epochs} epoch{'' if epochs == 1 else 's'})", kept=kept[name], name=name)
        if kept[name]:
            continue
        if name == "vgg19_finetune":
            head = run.recorded("vgg19")
            if head["training"]["status"] != "completed":
                _output.say(args, f"vgg19_finetune: not trained, the head {head['training']['status']}")
                continue
            from keras_apml import models  # the head trained in an earlier call: its saved model
            study.fine_tune(models.load_model(run.file("vgg19.keras")) if kept["vgg19"] else vgg19)
        else:
            study.vgg19_run(vgg19) if name == "vgg19" else study.conv_run(name)
    run.add_section("comparison", cifar_comparison(run.results(), STUDY))
    return _output.finish(run, args)


if __name__ == "__main__":
    _contract.run(main)
