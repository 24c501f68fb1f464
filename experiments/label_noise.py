"""Car/truck/cat: find the wrong labels with confident learning (cleanlab), then retrain without them.

    python -m experiments.label_noise --data benchmark --data-dir /tmp/data/cifar10-jpeg
    python -m experiments.review runs/label_noise/<stamp>     # review the flags in your browser
    python -m experiments.train --relabel runs/label_noise/<stamp>/reviewed_relabel.csv

Out-of-fold probabilities come from K-fold cross-validation (K=5) of the
recipe's network trained on the noisy labels with class weights and random
mirror images (``flip+class_weight``), repeated 3 times with other splits and
seeds and averaged, each held-out image scored with its mirror image too;
cleanlab's ``find_label_issues`` flags the images whose label the fold models
disagree with. No image is scored by a model that saw its label. Why each
part of this default (the class weights, the repeats, the mirror images, few
epochs: longer training learns the noise) is measured in docs/RESULTS.md,
with the variants tried and dropped.

Better: ``--init MODEL.keras``, every model started from a conv net trained
on CIFAR-10's seven other classes (``experiments.train --classes``), which
never saw a car, truck or cat label. A trained start learns the labels, noise
included, in fewer epochs, so the fold models then train 10 instead of 20.

Strongest: ``--features MODEL.keras``, e.g. airbench trained on the seven
other classes (``experiments.train --data cifar10 --classes
airplane,bird,deer,dog,frog,horse,ship --model airbench``). Each fold's
out-of-fold probabilities are the mean of a softmax head on that model's
cached penultimate features (each image's averaged with its mirror image's:
the backbone runs once per image, the head trains in seconds; cleanlab's
advice, a cheap model on good features) and MODEL itself fine-tuned on the
fold's images from its weights (``FINE_TUNE``: an airbench source at
airbench's recipe, rate 0.5, batches of 256, 8 epochs,
``flip+class_weight``), one K-fold; the retraining is the head's. About 10
minutes on 2 CPU cores; ``--detector head`` takes the head alone (about a
minute, half the precision: docs/RESULTS.md), ``--detector fine-tune`` the
fine-tuned models alone.

More rounds (``--rounds 2``): the second round's fold models train without
the images the first flagged (they are still scored) and cleanlab flags
again against the labels as given; with mirror-image training one round finds
as much, hence one by default.

Detection is scored against the benchmark's true labels (train by the
out-of-fold probabilities, dev by a model trained as the last round's fold
models were: on all of train, less the round before's flags if there was
one). Then the chosen imbalance strategy is retrained on (a) the noisy
labels, (b) the flagged images removed, (c) the flagged images relabelled to
the predicted class, and, where the benchmark knows them, (d) the true
labels: the ceiling any cleaning can reach with this recipe. Each over the
seeds, compared on dev.
"""

from collections import Counter

import numpy as np

from experiments import _contract, _data, _flags, _output
from keras_apml import progress, report
from keras_apml.errors import InputError
from keras_apml.imbalance import BEST_STRATEGY, STRATEGIES
from keras_apml.recipe import AIRBENCH, FEATURE_HEAD, Recipe

SHOWN = 32
PROBABILITIES = "out_of_fold_probabilities.npz"  # with the flagged indices: what detection leaves for a resumed call
REVIEW_SET = "review.npz"  # the flagged images and their labels, for experiments.review
# Every default of this study, then what --features, --init, --detector and --quick change (the last that applies
# wins).
DEFAULTS = {
    "seeds": [0, 1, 2],  # of the retraining; the first also seeds detection
    "repeats": 3,  # K-fold repeats, probabilities averaged
    "detect_epochs": 20,  # fewer than the retraining's: longer training learns more of the noise
    "detect_strategy": "flip+class_weight",  # class weights and random mirror images
    "strategy": BEST_STRATEGY,  # the imbalance study's best
}
FEATURES = {"detect_epochs": FEATURE_HEAD.epochs, "detect_strategy": "class_weight", "strategy": "class_weight"}
INIT = {"detect_epochs": 10}  # a trained start learns the labels, and their noise, in fewer epochs
FINE_TUNED = {"repeats": 1}  # --detector fine-tune or both: each fold model fine-tunes the source, one K-fold
QUICK = {"seeds": [0], "repeats": 1, "detect_epochs": 1}
# --detector fine-tune and both: the --features model fine-tuned on the images of each fold, from its weights, as
# measured (docs/RESULTS.md): an airbench source with airbench's recipe at a lower rate in smaller batches for 8
# epochs; a model of another architecture with that architecture's recipe for INIT's epochs.
DETECTORS = ("head", "fine-tune", "both")
FINE_TUNE = {"airbench": AIRBENCH.replace(lr=0.5, batch_size=256, epochs=8)}
FINE_TUNE_STRATEGY = "flip+class_weight"


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("label_noise", __doc__.splitlines()[0])
    _flags.add_benchmark(p)
    _flags.add_recipe(p)
    _flags.add_features(p)
    p.add_argument("--folds", type=_flags.positive_int(100), default=5, help="cross-validation folds (at least 2)")
    p.add_argument("--repeats", type=_flags.positive_int(100), default=None,
                   help=f"K-fold repeats with other splits and seeds, probabilities averaged (default: "
                        f"{DEFAULTS['repeats']}; --quick: {QUICK['repeats']})")
    p.add_argument("--rounds", type=_flags.positive_int(10), default=1,
                   help="rounds of flagging, each after the first with fold models trained without the round "
                        "before's flags")
    p.add_argument("--detect-epochs", type=_flags.positive_int(100_000), default=None,
                   help=f"epochs of the out-of-fold models and the dev-flagging model (default: "
                        f"{DEFAULTS['detect_epochs']}; --init: {INIT['detect_epochs']}; --features: --epochs, else "
                        f"{FEATURES['detect_epochs']}; --quick: {QUICK['detect_epochs']})")
    p.add_argument("--detector", choices=DETECTORS, default=None,
                   help="with --features MODEL, the out-of-fold models: both (the default: a softmax head on the "
                        "cached features averaged with MODEL fine-tuned on each fold's images from its weights; the "
                        "most accurate, about 10 minutes on 2 CPU cores), head (the head alone: about a minute, "
                        "half the precision) or fine-tune (the fine-tuned models alone); docs/RESULTS.md. The "
                        "retraining stays on the features; with --backbone or images: head")
    p.add_argument("--no-mirror", action="store_true",
                   help="score images as they are, not averaged with their mirror images (--features: features of "
                        "the images alone)")
    p.add_argument("--detect-strategy", default=None, choices=tuple(STRATEGIES),
                   help=f"how the out-of-fold models are trained (default: {DEFAULTS['detect_strategy']}; "
                        f"--features: {FEATURES['detect_strategy']})")
    p.add_argument("--strategy", default=None, choices=tuple(STRATEGIES),
                   help=f"the strategy retrained on cleaned labels (default: {DEFAULTS['strategy']}; --features: "
                        f"{FEATURES['strategy']})")
    _flags.add_seeds(p, "the retraining (the first also seeds detection)", DEFAULTS, QUICK)
    _flags.add_cluster(p)
    args = _data.choose_data(p, p.parse_args(argv))
    if _flags.on_features(args):
        for flag, name in (("--detect-strategy", args.detect_strategy), ("--strategy", args.strategy)):
            if name is not None and not STRATEGIES[name].on_features:
                p.error(f"{flag} {name} augments images: with --features choose one without augmentation")
    if args.detector not in (None, "head") and not args.features:
        p.error(f"--detector {args.detector} fine-tunes the model of --features MODEL on the images, which is not "
                "given" + (" (a --backbone is not fine-tuned)" if args.backbone else ""))
    if args.detector is None:
        args.detector = "both" if args.features else "head"
    features = _flags.on_features(args)
    _flags.resolve_defaults(args, DEFAULTS, (features, FEATURES), (features and args.epochs,
                                                                   {"detect_epochs": args.epochs}),
                            (args.init, INIT), (args.detector != "head", FINE_TUNED), (args.quick, QUICK))
    if args.folds < 2:
        p.error(f"--folds must be at least 2, got {args.folds}")
    return args


def fine_tune_recipe(args):
    """The recipe of the fold models fine-tuned from --features's model (``FINE_TUNE``; --quick: 1 epoch)."""
    from keras_apml import models

    source = models.load_model(args.features)
    name = source.name
    if name not in models.BUILDERS or name == "linear":
        raise InputError(f"--detector {args.detector} fine-tunes --features {args.features} on the images, but it "
                         f"is a {name!r}, not one of this toolkit's networks ({', '.join(sorted(models.BUILDERS))})")
    standardized = any(layer.name == "standardize" for layer in source.layers)  # as it was trained
    base = FINE_TUNE.get(name, Recipe(model=name, epochs=INIT["detect_epochs"], standardize=standardized))
    return base.replace(init=args.features, epochs=1 if args.quick else base.epochs)


def detect(run, args, bench, recipe, tasks, pixels=None, tuned=None):
    """Flag the training and dev labels (the fold models trained as ``tasks``); returns ``(flagged train indices,
    out-of-fold probabilities, metrics)``. ``tuned``: the recipe of --detector fine-tune or both, which train on
    the images ``pixels`` ({"train", "dev"}) where the study's inputs are features."""
    from keras_apml import label_files, label_noise, npz

    names, train, dev = bench.class_names, bench["train"], bench["dev"]
    recipe = recipe.replace(epochs=args.detect_epochs)
    models = args.rounds * args.folds * args.repeats
    step = progress.StudyProgress(models + 1, args.quiet)
    # features are already each image's and its mirror image's mean
    fit_predict = label_noise.strategy_fit_predict(args.detect_strategy, recipe,
                                                   mirror=not args.no_mirror and not _flags.on_features(args))
    x_train, x_dev = train.x, dev.x
    if tuned is not None:
        fine_tuned = label_noise.strategy_fit_predict(FINE_TUNE_STRATEGY, tuned, mirror=not args.no_mirror)
        if args.detector == "fine-tune":
            fit_predict, x_train, x_dev = fine_tuned, pixels["train"], pixels["dev"]
        else:  # both: each fold's head and fine-tuned model, on the same split, averaged
            fit_predict = label_noise.ensemble_fit_predict(fit_predict, fine_tuned)
            x_train, x_dev = label_noise.Views(train.x, pixels["train"]), label_noise.Views(dev.x, pixels["dev"])
    probabilities, flags = label_noise.flag_in_rounds(
        x_train, train.y, fit_predict, args.rounds, folds=args.folds, seed=args.seeds[0],
        on_fold=lambda i, _: step(f"out-of-fold model {i}/{models}"), repeats=args.repeats, tasks=tasks)
    flagged = flags[-1]
    suggested = probabilities[flagged].argmax(axis=1)
    left_out = flags[-2] if len(flags) > 1 else []  # trained as the last round's fold models were
    x_fit, y_fit = label_noise.clean(x_train, train.y, left_out, probabilities, "removed")
    job = ("model on the training labels, to flag dev labels", (*tasks.share(x_fit, y_fit, x_dev),
                                                                args.seeds[0]), {})
    [(_, dev_probabilities)] = tasks.run(fit_predict, [job], announce=step)
    dev_flagged = label_noise.find_issues(dev.y, dev_probabilities)

    npz.save_arrays(run.file(PROBABILITIES), probabilities=probabilities, labels=train.y,
                    flagged=flagged)
    label_files.write_relabel_file(run.file("flagged_relabel.csv"), flagged, suggested, names, train.paths,
                                   made_from=made_from(bench, "train", args))
    label_files.write_relabel_file(run.file("flagged_dev_relabel.csv"), dev_flagged,
                                   dev_probabilities[dev_flagged].argmax(axis=1), names, dev.paths,
                                   made_from=made_from(bench, "dev", args))
    result = {"train": {"flagged": len(flagged)}, "dev": {"flagged": len(dev_flagged)},
              "rounds": [{"flagged": len(f)} for f in flags], "detector": args.detector,
              "fine_tune": tuned and {"model": tuned.init, "epochs": tuned.epochs, "strategy": FINE_TUNE_STRATEGY},
              "flagged_by_observed_and_suggested": _pairs(train.y[flagged], suggested, names)}
    if train.y_true is not None:
        result["train"] = {**label_noise.detection_quality(flagged, train.y, train.y_true),
                           **label_noise.ranking_quality(label_noise.label_quality(train.y, probabilities),
                                                         train.y, train.y_true)}
        result["dev"] = {**label_noise.detection_quality(dev_flagged, dev.y, dev.y_true),
                         **label_noise.ranking_quality(label_noise.label_quality(dev.y, dev_probabilities),
                                                       dev.y, dev.y_true)}
        # the earlier rounds' flags, then the last round's (ranked too)
        result["rounds"] = [label_noise.detection_quality(f, train.y, train.y_true) for f in flags[:-1]]
        result["rounds"].append(result["train"])
        result["train_by_pair"] = label_noise.flags_by_pair(flagged, train.y, train.y_true, suggested, names)
    return flagged, probabilities, result


def _pairs(observed, suggested, names):
    """Counts of (observed label -> suggested label) among flagged images, the most common first."""
    return dict(Counter(f"{names[o]} -> {names[s]}" for o, s in zip(observed, suggested)).most_common())


def save_review_set(run, bench, images, flagged, probabilities, args):
    """The flagged training ``images`` with their labels and scores, and unflagged ones to compare, for
    ``experiments.review``."""
    from keras_apml import label_noise, review

    train = bench["train"]
    reviewed = review.review_set(images, train.y, probabilities, flagged,
                                 label_noise.label_quality(train.y, probabilities), bench.class_names,
                                 truth=train.y_true, paths=train.paths, seed=args.seeds[0],
                                 made_from=made_from(bench, "train", args))
    review.save_review_set(run.file(REVIEW_SET), reviewed)


def data_section(bench, args):
    """``experiments.label_noise``: the data, where its observed and true labels come from, its sizes."""
    observed = (f"the observed labels from `{args.labels}`" if getattr(args, "labels", None) else
                "the observed labels as the data gives them")
    truth = (f"the true labels from `{args.true_labels}`" if getattr(args, "true_labels", None) else
             "the true labels the data knows" if bench["train"].y_true is not None else "no true labels")
    sizes = ", ".join(f"{name} {len(split)}" for name, split in bench.items())
    return (f"## Data\n\n{bench.source}: {len(bench.class_names)} classes ({', '.join(bench.class_names)}); "
            f"{observed}, {truth}; {sizes} images{' (--quick)' if args.quick else ''}.")


def made_from(bench, split, args):
    """What this study's positions into ``split`` are positions in (the data drawn with seed 0, as every
    study's), as its files of positions say."""
    return _data.positions_made_from(bench, [split], seed=0, subset="quick" if args.quick else "all")


def flag_caption(i, bench, probabilities):
    """``car -> cat`` (observed -> suggested), the probability the models gave the observed label, and where the
    truth is known whether that label really is wrong."""
    names, train = bench.class_names, bench["train"]
    observed = train.y[i]
    lines = [f"{names[observed]} -> {names[probabilities[i].argmax()]}",
             f"p({names[observed]}) = {probabilities[i, observed]:.2f}"]
    if train.y_true is not None:
        true = train.y_true[i]
        lines.append(f"wrong: is {names[true]}" if true != observed else "label was right")
    return "\n".join(lines)


def report_detection(run, bench, images, flagged, probabilities, detection, args):
    """The detection section: quality table, flagged grid (of the training ``images``), the CSV for review."""
    from keras_apml import plots

    shown = flagged[:SHOWN]
    captions = [flag_caption(i, bench, probabilities) for i in shown]
    title = (f"Flagged training labels: the {len(shown)} of {len(flagged)} whose label the out-of-fold models "
             "found least likely, least likely first")
    grid = run.save_figure(plots.image_grid(images[shown], captions, title=title), "flagged.png")
    run.add_section("detection", detection_section(detection, args, (len(bench["train"]), len(bench["dev"])), grid))


def earlier_detection(run, bench):
    """``(flagged, probabilities, detection)`` an earlier call of this run recorded, or None when its file is
    missing, damaged or of other labels (then detection runs again)."""
    from keras_apml import npz

    try:
        saved = npz.load_arrays(run.file(PROBABILITIES))
    except InputError:
        return None
    flagged, probabilities = saved.get("flagged"), saved.get("probabilities")
    if (flagged is None or probabilities is None or probabilities.shape != (len(bench["train"]), len(bench.class_names))
            or not np.array_equal(saved.get("labels"), bench["train"].y)
            or flagged.size and not 0 <= flagged.min() <= flagged.max() < len(bench["train"])):
        return None
    return flagged, probabilities, run.recorded("detection")


def detection_section(detection, settings, sizes, grid_png):
    """``experiments.label_noise``: detection quality per round and split, the flags, the file to review.

    ``settings``: folds, detect_strategy, detect_epochs, repeats, no_mirror, rounds (the parsed flags);
    ``sizes``: (training labels, dev labels).
    """
    s = settings
    repeated = f", averaged over {s.repeats} repeats" if s.repeats > 1 else ""
    features = getattr(s, "features", None) or getattr(s, "backbone", None)
    scored = {"head": f"each image's {'features ' if features else ''}", "fine-tune": "each image's probabilities ",
              "both": "each image's features, and the fine-tuned models' probabilities for it, "}
    mirrored = "" if s.no_mirror else f", {scored[detection.get('detector', 'head')]}averaged with its mirror image's"
    epochs = f"{s.detect_epochs} epoch" + ("s" if s.detect_epochs > 1 else "")
    if features:
        epochs += f", a softmax head on the {'penultimate' if s.features else 'pooled'} features of `{features}`"
    rounds = ""
    if s.rounds > 1:
        counts = ", ".join(str(r["flagged"]) for r in detection["rounds"])
        rounds = (f" In {s.rounds} rounds, each after the first with fold models trained without the images "
                  f"the round before flagged (they flagged {counts}); the last round's flags count.")
    tuned = detection.get("fine_tune")
    if tuned:
        made = (f"`{tuned['strategy']}` models of `{tuned['model']}` fine-tuned on each fold's images from its "
                f"weights ({tuned['epochs']} epoch{'s' if tuned['epochs'] > 1 else ''})")
        models = made if detection["detector"] == "fine-tune" else \
            f"`{s.detect_strategy}` models ({epochs}) averaged, fold by fold, with {made}"
    else:
        models = f"`{s.detect_strategy}` models ({epochs})"
    lines = [f"## Detection\n\n{s.folds}-fold out-of-fold probabilities from {models}{repeated}{mirrored}; "
             f"cleanlab flagged {detection['train']['flagged']} of {sizes[0]} training labels and "
             f"{detection['dev']['flagged']} of {sizes[1]} dev labels.{rounds}"]
    if "f1" in detection["train"]:
        train = [(f"train, round {i}" if s.rounds > 1 else "train", d)
                 for i, d in enumerate(detection["rounds"], start=1)]
        rows = [(split, d["wrong"], d["flagged"], d["correctly_flagged"], d["precision"], d["recall"], d["f1"],
                 d.get("roc_auc"), d.get("average_precision")) for split, d in (*train, ("dev", detection["dev"]))]
        lines.append(report.markdown_table(["split", "wrong labels", "flagged", "flagged and wrong", "precision",
                                            "recall", "F1", "ROC AUC", "average precision"], rows))
        lines.append("ROC AUC and average precision rank every label by its label-quality score (cleanlab's "
                     "self-confidence) against the truth, without the threshold of the flags.")
    if "train_by_pair" in detection:
        pairs = detection["train_by_pair"]
        lines.append("Wrong training labels by kind (observed, really), and how many were flagged:\n\n" +
                     report.markdown_table(["labelled", "really", "wrong", "flagged"],
                                           [(p["observed"], p["true"], p["wrong"], p["flagged"])
                                            for p in pairs["wrong"]]))
        if pairs["right_flagged"]:
            lines.append("Right training labels flagged, and what the models took them for: " + ", ".join(
                f"{p['label']} as {p['taken_for']}: {p['flagged']}" for p in pairs["right_flagged"]) + ".")
    lines.append("Flagged (observed -> suggested): " + ", ".join(
        f"{k}: {v}" for k, v in detection["flagged_by_observed_and_suggested"].items()) + ".")
    lines.append(f"![flagged images]({grid_png})\n\nEach image: observed label -> the class the models suggest; "
                 "`p(label)`, the out-of-fold probability of the observed label (cleanlab's self-confidence: the "
                 "lower, the surer the flag; the grid is in that order); where the truth is known, whether the "
                 "observed label really is wrong, and what the image is. The flagged training labels, with the "
                 "suggested class, are in `flagged_relabel.csv` (dev: `flagged_dev_relabel.csv`). Review them in your "
                 "browser with `python -m experiments.review RUN_DIR` (one key per decision, each saved as it is "
                 "made), then `python -m experiments.train --relabel RUN_DIR/reviewed_relabel.csv` trains on the "
                 "labels you chose.")
    return "\n\n".join(lines)


def retraining_section(strategy, seeds, summaries, class_names):
    """``experiments.label_noise``: the strategy retrained on noisy, cleaned and (where known) true labels."""
    return (f"## Retraining `{strategy}` on cleaned labels\n\n(a) noisy: the labels as given; (b) removed: flagged "
            "images dropped; (c) relabelled: flagged images given the suggested class; (d) true, where the "
            "benchmark knows them: every label right, the ceiling of any cleaning. "
            f"{report.seed_words(seeds)}, on dev.\n\n"
            + report.seed_table(summaries, class_names, first="training labels"))


def main(argv=None):
    args = parse_args(argv)
    recipe = _flags.resolve_recipe(args)
    with _output.cluster_tasks(args) as tasks:
        return study(args, recipe, tasks)


def study(args, recipe, tasks):
    """Detection, then the retraining on each cleaning of the labels: every training in turn, or as ``tasks`` on
    a cluster."""
    from keras_apml import imbalance, label_noise, trainer

    bench = _data.load(args, "benchmark", streams=True)
    names, images, features = bench.class_names, bench["train"].x, None
    pixels = {"train": images, "dev": bench["dev"].x}
    label_noise.check_folds(bench["train"].y, args.folds, len(names))
    tuned = fine_tune_recipe(args) if args.detector != "head" else None
    if _flags.on_features(args):
        bench, features = _data.with_features(args, bench, mirror=not args.no_mirror)
    if bench.streamed:  # the images are left in their files: strategies that need them in memory are refused
        for flag, name in (("--detect-strategy", args.detect_strategy), ("--strategy", args.strategy)):
            if not imbalance.strategy(name).streams:
                raise InputError(f"{flag} {name} needs the images in memory; these are streamed from their files "
                                 "(past --memory-budget): choose a strategy without resampling or offline copies")
    train = bench["train"]
    trainer.check(recipe, train.x, len(bench.class_names))
    if tuned is not None:  # the --features model loads, and fits these images and classes, or fails now
        trainer.check(tuned, images, len(bench.class_names))
    _output.start_tasks(args, tasks)
    run = _output.open_run("label_noise", args, recipe=recipe.to_dict(), features=features)
    run.add_section("data", data_section(bench, args))
    if features:
        also = tuned and (f"Detection also fine-tunes `{tuned.init}` itself on each fold's images "
                          f"(`--detector {args.detector}`; the Detection section).")
        run.add_section("features", report.backbone_section(features, also or ""))

    earlier = run.recorded("detection") and earlier_detection(run, bench)
    if earlier:
        _output.say(args, "detection: recorded in an earlier call, kept")
        flagged, probabilities, detection = earlier
    else:
        flagged, probabilities, detection = detect(run, args, bench, recipe, tasks, pixels, tuned)
        run.record("detection", detection)
        report_detection(run, bench, images, flagged, probabilities, detection, args)
    if not earlier or not run.file(REVIEW_SET).is_file():
        save_review_set(run, bench, images, flagged, probabilities, args)

    training_sets = {how: label_noise.clean(train.x, train.y, flagged, probabilities, how)
                     for how in label_noise.CLEANING}
    if train.y_true is not None:  # every label right: the most any cleaning can give this recipe
        training_sets["true"] = train.x, train.y_true
    entries = {how: run.recorded(how) or {"training_images": len(y), "seeds": {}}
               for how, (_, y) in training_sets.items()}
    step = progress.StudyProgress(len(training_sets) * len(args.seeds), args.quiet)
    dev = {"dev": tasks.share(bench["dev"].x, bench["dev"].y, bench["dev"].y_true)}
    jobs = {}
    for how, seed in ((h, s) for h in training_sets for s in args.seeds):
        if str(seed) in entries[how]["seeds"]:  # trained by an earlier call of this run
            step(f"{args.strategy} on {how} labels, seed {seed}", kept=True)
        else:
            jobs[f"{args.strategy} on {how} labels, seed {seed}"] = how, seed
    shared = {how: tasks.share(*training_sets[how]) for how in dict.fromkeys(how for how, _ in jobs.values())}
    work = [(label, (args.strategy, seed, *shared[how], recipe, dev, names), {}) for label, (how, seed) in jobs.items()]
    for label, done in tasks.run(trainer.train_and_score, work, announce=step):
        how, seed = jobs[label]
        entry = entries[how]
        entry["seeds"][str(seed)] = {"dev": done["metrics"] and done["metrics"]["dev"],
                                     "training": done["result"].to_dict(), "timing": done["result"].timing()}
        run.record(how, entry)
    summaries = {}
    for how, entry in entries.items():  # the seeds in the flags' order, however the tasks finished
        finished = [entry["seeds"][str(s)]["dev"] for s in args.seeds if entry["seeds"][str(s)]["dev"] is not None]
        entry["summary"] = summaries[how] = report.summarize_seeds(finished, names)
        run.record(how, entry)
    run.add_section("retraining", retraining_section(args.strategy, args.seeds, summaries, names))
    return _output.finish(run, args)


if __name__ == "__main__":
    _contract.run(main)
