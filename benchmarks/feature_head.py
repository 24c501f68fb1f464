"""Benchmark the feature head's settings on car/truck/cat: detection F1 and dev ceilings per setting.

    python -m benchmarks.feature_head --data-dir /tmp/data/cifar10-jpeg --features runs/source/model.keras \
        --settings default lr=1e-3 epochs=10 epochs=60,lr=3e-3 strategy=oversample
    python -m benchmarks.feature_head --data-dir /tmp/data/cifar10-jpeg --features runs/source/model.keras \
        --feature-layers block1_gelu2,block2_gelu2,features

For each setting (changes to ``recipe.FEATURE_HEAD``, plus ``strategy=`` for
the imbalance strategy, class_weight by default) on the backbone's cached,
mirror-averaged features (``--features``'s penultimate layer or
``--feature-layers``, or ``--backbone``'s): one 5-fold out-of-fold run on
the noisy training labels, cleanlab's flags scored against the true labels (F1), the
out-of-fold predictions' balanced accuracy against the truth, and the dev
balanced accuracy (true labels) of the head trained on every label right and
on the flagged labels relabelled; seed 0 throughout. This is how
FEATURE_HEAD's rate was chosen (docs/RESULTS.md); label_noise's own figures
average 3 K-fold repeats.
"""

import time

from benchmarks.timing import report
from experiments import _contract, _data, _flags
from keras_apml.errors import InputError

INTS = ("epochs", "batch_size")


def setting(text):
    """``lr=3e-3,epochs=10`` (or ``default``) as a dict of recipe changes."""
    if text == "default":
        return {}
    try:
        changes = dict(pair.split("=", 1) for pair in text.split(","))
        return {k: v if k == "strategy" else int(v) if k in INTS else float(v) for k, v in changes.items()}
    except ValueError:
        raise InputError(f"a setting is key=value pairs or 'default', got {text!r}") from None


def parse_args(argv=None):
    """The benchmark's command line."""
    parser = _flags.ArgumentParser(prog="python -m benchmarks.feature_head", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 directory (image-folder tree or batches)")
    _flags.add_features(parser)  # --features (with --feature-layers) or --backbone: the features
    parser.add_argument("--settings", nargs="+", type=setting, default=[{}],
                        help="recipe changes per setting, e.g. lr=3e-3,epochs=10 (default: FEATURE_HEAD as it is)")
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not _flags.on_features(args):
        parser.error("give --features MODEL.keras or --backbone NAME")
    args.quick, args.quiet, args.train_pickle, args.dev_pickle = False, True, None, None  # _data.load's flags
    args.data = "benchmark"  # drawn from the CIFAR-10 tree at --data-dir
    return args


def main(argv=None):
    args = parse_args(argv)

    from keras_apml import evaluation, label_noise, trainer
    from keras_apml.recipe import FEATURE_HEAD

    bench, info = _data.with_features(args, _data.load(args, "benchmark"))
    figures = {"feature_seconds": info["seconds"], "feature_cache": info["cache"]}
    for changes in args.settings:
        name = ",".join(f"{k}={v}" for k, v in changes.items()) or "default"
        changes = dict(changes)
        strategy, recipe = changes.pop("strategy", "class_weight"), FEATURE_HEAD.replace(**changes)
        start = time.perf_counter()
        probabilities = label_noise.out_of_fold_probabilities(
            bench["train"].x, bench["train"].y, label_noise.strategy_fit_predict(strategy, recipe), folds=5, seed=0)
        flagged = label_noise.find_issues(bench["train"].y, probabilities)
        quality = label_noise.detection_quality(flagged, bench["train"].y, bench["train"].y_true)

        def dev_balanced_accuracy(x, y):
            model, _, _ = trainer.train(strategy, x, y, recipe, seed=0)
            dev = bench["dev"]
            scored = evaluation.evaluate(model, dev.x, dev.y, bench.class_names, y_true=dev.y_true)
            return round(scored["true_labels"]["balanced_accuracy"], 4)

        figures[name] = {
            "f1": round(quality["f1"], 4), "flagged": quality["flagged"],
            "correctly_flagged": quality["correctly_flagged"], "wrong": quality["wrong"],
            "oof_balanced_accuracy_vs_truth": round(evaluation.classification_metrics(
                bench["train"].y_true, probabilities.argmax(axis=1), bench.class_names)["balanced_accuracy"], 4),
            "dev_every_label_right": dev_balanced_accuracy(bench["train"].x, bench["train"].y_true),
            "dev_relabelled": dev_balanced_accuracy(*label_noise.clean(bench["train"].x, bench["train"].y, flagged,
                                                                       probabilities, "relabelled")),
            "seconds": round(time.perf_counter() - start, 1)}
    report(figures, args.out)


if __name__ == "__main__":
    _contract.run(main)
