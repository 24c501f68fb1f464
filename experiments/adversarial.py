"""Adversarial examples against a trained model: FGSM and PGD epsilon sweeps, targeted attacks, examples.

    python -m experiments.adversarial --data benchmark --data-dir /tmp/data/cifar10-jpeg
    python -m experiments.adversarial --model runs/cifar_transfer/<stamp>/3_augmented.keras --attack pgd

The default model is best.keras of the newest ``experiments.imbalance`` run
(car/truck/cat dev set), else the newest ``experiments.cifar_transfer`` conv
net (CIFAR-10 test set). Perturbations live in [0, 1] pixel space: the model
carries its own preprocessing. Untargeted attacks use the true labels (the
benchmark's true ones where known) or, with ``--use-predictions``, the model's
own predictions, which avoids label leaking.
"""

from pathlib import Path

import numpy as np

from experiments import _contract, _data, _flags, _output
from keras_apml import progress, report
from keras_apml.cifar10 import CIFAR10_CLASSES
from keras_apml.errors import InputError

EPS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
ATTACKS = ("fgsm", "pgd", "optimize")
MAKES = "`python -m experiments.imbalance` or `python -m experiments.cifar_transfer`"
DEFAULT_MODELS = ("imbalance/*/best.keras", "cifar_transfer/*/3_augmented.keras",
                  "cifar_transfer/*/2_standardized.keras", "cifar_transfer/*/1_raw.keras")


def eps_list(text):
    """Comma-separated L-infinity budgets in [0, 1], sorted, distinct."""
    parse = _flags.number(0, 1)
    values = sorted({parse(e) for e in text.split(",") if e.strip()})
    if not values:
        raise ValueError("no budget")
    return values


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("adversarial", __doc__.splitlines()[0])
    _flags.add_seed(p, "seed of PGD's random starts and of the images attacked and shown (the data is drawn with "
                       "seed 0, as every study's)")
    p.add_argument("--model", default=None, help="a .keras model (default: see above)")
    p.add_argument("--data", choices=("benchmark", "cifar10", "folder"), default=None,
                   help="evaluation set: the benchmark's dev set, CIFAR-10's test set, or the test split of your own "
                        "image folders (default: folder when --data-dir is a tree of image folders, whatever their "
                        "class names, else from the model's classes: 3 benchmark, 10 CIFAR-10)")
    p.add_argument("--attack", choices=ATTACKS, default="fgsm", help="attack of the examples and the targeted study")
    p.add_argument("--eps", type=eps_list, default=list(EPS),
                   help="comma-separated L-infinity budgets of the sweep, in [0, 1] pixels (default: "
                        + ",".join(f"{e:g}" for e in EPS) + ")")
    p.add_argument("--example-eps", type=_flags.number(0, 1), default=0.02,
                   help="budget of the examples and the targeted attacks")
    p.add_argument("--target", default=None, help="targeted study for this class only (default: every class)")
    p.add_argument("--examples", type=_flags.positive_int(1000), default=6, help="correctly classified images shown")
    p.add_argument("--targeted-images", type=_flags.positive_int(10 ** 6), default=500,
                   help="images attacked per target class")
    p.add_argument("--pgd-steps", type=_flags.positive_int(10_000), default=10, help="PGD steps (step size eps/4)")
    p.add_argument("--use-predictions", action="store_true",
                   help="attack the model's own predictions instead of the true labels")
    _flags.add_image_folder(p)
    args = p.parse_args(argv)
    if args.data is None and _data.data_kind(args) == "folder":
        args.data = "folder"
    if args.data != "folder":
        _flags.refuse_folder_flags(p, args)
    return args


def resolve_model(path):
    """The model file: the given one, else the newest imbalance best.keras, else the newest conv net."""
    if path is None:
        return _output.newest(DEFAULT_MODELS, MAKES)
    if not Path(path).is_file():
        raise InputError(f"model {path} does not exist; make one with {MAKES}")
    return Path(path)


def load_evaluation_set(args, num_classes, input_size):
    """``(x in [0, 1], observed labels, true labels or None, class names, set name)``: the benchmark's dev set,
    CIFAR-10's or your own folders' test set; ``input_size`` (height, width) is the model's, which your own
    images are resized to unless --image-size says otherwise."""
    kind = args.data or {3: "benchmark", 10: "cifar10"}.get(num_classes)
    if kind is None:
        raise InputError(f"the model has {num_classes} classes; pass --data benchmark (3) or cifar10 (10)")
    if kind == "folder":
        args.image_size = args.image_size or tuple(input_size)
        if tuple(args.image_size) != tuple(input_size):
            raise InputError(f"the model takes {input_size[0]}x{input_size[1]} images, not --image-size "
                             f"{args.image_size[0]}x{args.image_size[1]}")
        data = _data.load(args, "folder").train_and_test()
    elif (kind == "benchmark") != (num_classes == 3) or (kind == "cifar10") != (num_classes == 10):
        raise InputError(f"the model has {num_classes} classes but --data {kind} has "
                         f"{3 if kind == 'benchmark' else 10}")
    else:
        data = _data.load(args, kind)
    if len(data.class_names) != num_classes:
        hint = " (a car/truck/cat model: --data benchmark draws the benchmark from this CIFAR-10 tree)" if (
            num_classes == 3 and tuple(data.class_names) == CIFAR10_CLASSES) else ""
        raise InputError(f"the model has {num_classes} classes; {args.data_dir} has {len(data.class_names)}: "
                         f"{', '.join(data.class_names)}{hint}")
    name = "dev" if kind == "benchmark" else "test"
    scored = data[name]
    return scored.x.astype(np.float32) / 255.0, scored.y, scored.y_true, tuple(data.class_names), name


def sweep(model, x, labels, scored, args, names):
    """Accuracy and balanced accuracy against eps for FGSM and PGD; returns metrics and the FGSM images."""
    import time

    from keras_apml import adversarial, evaluation

    results, fgsm_images = {}, {}
    step = progress.StudyProgress(2 * len(args.eps), args.quiet)
    for attack, eps in ((a, e) for a in ("fgsm", "pgd") for e in args.eps):
        step(f"{attack} eps={eps:g}")
        start = time.perf_counter()
        if attack == "fgsm":
            x_adv, _ = adversarial.fgsm(model, x, labels, eps)
            fgsm_images[eps] = x_adv
        else:
            x_adv, _ = adversarial.pgd(model, x, labels, eps, steps=args.pgd_steps, seed=args.seed)
        seconds = time.perf_counter() - start
        metrics = evaluation.evaluate(model, x_adv, scored, names)
        results.setdefault(attack, {})[f"{eps:g}"] = {
            "accuracy": metrics["accuracy"], "balanced_accuracy": metrics["balanced_accuracy"],
            "per_class_accuracy": metrics["per_class_accuracy"], "attack_seconds": round(seconds, 3)}
    return results, fgsm_images


def targeted(model, x, scored, predicted, args, names):
    """Success rate per target class: correctly classified images of other classes pushed to the target."""
    from keras_apml import evaluation

    targets = range(len(names)) if args.target is None else [_class_index(args.target, names)]
    rng = np.random.default_rng(args.seed)
    rates = {}
    for t in targets:
        pool = np.flatnonzero((predicted == scored) & (scored != t))
        chosen = rng.permutation(pool)[:args.targeted_images]
        goal = np.full(len(chosen), t)
        if len(chosen) == 0:
            rates[names[t]] = {"images": 0, "success_rate": None}
            continue
        attacked = attack(model, x[chosen], goal, args, targeted=True)
        hit = evaluation.predict_labels(model, attacked[0]) == t
        rates[names[t]] = {"images": int(len(chosen)), "success_rate": float(hit.mean())}
        if "steps" in attacked.info:
            rates[names[t]]["mean_steps"] = float(attacked.info["steps"].mean())
            rates[names[t]]["mean_l2"] = float(attacked.info["l2"].mean())
    return rates


def _class_index(name, names):
    """The index of a class given by name or number."""
    if name in names:
        return names.index(name)
    if name.isdigit() and int(name) < len(names):
        return int(name)
    raise InputError(f"unknown --target {name!r}; classes: {', '.join(names)}")


def attack(model, x, y, args, targeted=False):
    """The chosen ``--attack`` at ``--example-eps`` (the optimisation attack is targeted by nature)."""
    from keras_apml import adversarial, evaluation

    if args.attack == "fgsm":
        return adversarial.fgsm(model, x, y, args.example_eps, targeted=targeted)
    if args.attack == "pgd":
        return adversarial.pgd(model, x, y, args.example_eps, steps=args.pgd_steps, targeted=targeted,
                               seed=args.seed)
    if not targeted:  # untargeted examples: aim at the second most likely class
        y = np.argsort(evaluation.predict_proba(model, x), axis=1)[:, -2]
    return adversarial.optimize_attack(model, x, y)


def example_figure(model, x, labels, predicted, args, names):
    """Original | amplified perturbation | adversarial image for correctly classified examples."""
    from keras_apml import evaluation, plots

    chosen = np.flatnonzero(predicted == labels)[:args.examples]
    attacked = attack(model, x[chosen], labels[chosen], args)
    x_adv, delta = attacked
    before, after = evaluation.predict_proba(model, x[chosen]), evaluation.predict_proba(model, x_adv)
    scale = np.abs(delta).max() or 1.0
    images, captions = [], []
    for i in range(len(chosen)):
        images += [x[chosen[i]], 0.5 + delta[i] / (2 * scale), x_adv[i]]
        captions += [f"{names[before[i].argmax()]} {before[i].max():.0%}", f"delta x{0.5 / scale:.0f}",
                     f"{names[after[i].argmax()]} {after[i].max():.0%}"]
    budget = "unbounded, Adam + L1" if args.attack == "optimize" else f"eps {args.example_eps:g}"
    title = f"{args.attack}, {budget}\noriginal | perturbation | adversarial"
    return plots.image_grid(images, captions, columns=3, title=title), len(chosen)


def eps_sweep_section(model_path, set_name, n, true_labels, use_predictions, pgd_steps, results, curves_png,
                      grid_png):
    """``experiments.adversarial``: accuracy against eps for FGSM and PGD."""
    rows = [(f"{float(eps):g}", results["fgsm"][eps]["accuracy"], results["fgsm"][eps]["balanced_accuracy"],
             results["pgd"][eps]["accuracy"], results["pgd"][eps]["balanced_accuracy"]) for eps in results["fgsm"]]
    return (f"## Epsilon sweep\n\nModel `{model_path}` on the {set_name} set ({n} images), scored against "
            f"{'true' if true_labels else 'the given'} labels; attacks aim at "
            f"{'the model predictions' if use_predictions else 'the true labels'}. PGD: {pgd_steps} steps of eps/4 "
            "from a random start.\n\n"
            + report.markdown_table(["eps", "FGSM accuracy", "FGSM balanced acc.", "PGD accuracy",
                                     "PGD balanced acc."], rows)
            + f"\n\n![accuracy against eps]({curves_png})\n\n![FGSM images]({grid_png})")


def targeted_section(attack, eps, rates, examples_png, count):
    """``experiments.adversarial``: examples and the success rate per target class."""
    table = report.markdown_table(["target", "images", "success rate"],
                                  [(t, r["images"], r["success_rate"]) for t, r in rates.items()])
    return f"## Examples and targeted attacks ({attack}, eps {eps:g})\n\n![{count} examples]({examples_png})\n\n{table}"


def main(argv=None):
    args = parse_args(argv)

    from keras_apml import evaluation, models, plots

    model_path = resolve_model(args.model)
    model = models.load_model(model_path)
    if args.data != "folder":
        models.check_input_shape(model, model_path)
    x, y, y_true, names, set_name = load_evaluation_set(args, int(model.output_shape[-1]),
                                                        tuple(model.input_shape[1:3]))
    if args.target is not None:
        _class_index(args.target, names)
    run = _output.open_run("adversarial", args, model=str(model_path), evaluation_set=set_name, images=len(y))
    scored = y if y_true is None else y_true
    predicted = evaluation.predict_labels(model, x)
    labels = predicted if args.use_predictions else scored

    results, fgsm_images = sweep(model, x, labels, scored, args, names)
    run.record("sweep", results)
    curves = plots.eps_curves(results, f"Accuracy under attack ({set_name}, {len(y)} images)", len(names))
    shown = np.random.default_rng(args.seed).permutation(len(y))[:8]
    grid_images, captions = [], []
    for eps, x_adv in fgsm_images.items():
        after = evaluation.predict_labels(model, x_adv[shown])
        grid_images += list(x_adv[shown])
        captions += [f"eps {eps:g}\n{names[scored[i]]} -> {names[p]}" for i, p in zip(shown, after)]
    grid = plots.image_grid(grid_images, captions, columns=len(shown), title="FGSM: a row per eps (true -> predicted)")
    run.add_section("sweep", eps_sweep_section(
        model_path, set_name, len(y), y_true is not None, args.use_predictions, args.pgd_steps, results,
        run.save_figure(curves, "eps_sweep.png"), run.save_figure(grid, "eps_grid.png")))

    figure, count = example_figure(model, x, scored, predicted, args, names)
    rates = targeted(model, x, scored, predicted, args, names)
    run.record("targeted", {"attack": args.attack, "eps": args.example_eps, "per_target": rates})
    run.add_section("targeted", targeted_section(args.attack, args.example_eps, rates,
                                                 run.save_figure(figure, "examples.png"), count))
    return _output.finish(run, args)


if __name__ == "__main__":
    _contract.run(main)
