"""Car/truck/cat: learning rate, batch size, epochs, optimiser, weight decay and schedule, one sweep each.

    python -m experiments.hyperparams --data benchmark --data-dir /tmp/data/cifar10-jpeg
    python -m experiments.hyperparams --sweep lr,optimizer --epochs 10

Every configuration trains the recipe (changed in one setting) with the
chosen imbalance strategy on 80% of the training set; the other 20%
(stratified, observed labels) is the validation set that picks the best
setting, by balanced accuracy, so the dev set and the true labels play no
part in the choice. Dev metrics (true and observed labels) are reported
beside it. A run whose loss becomes NaN or infinite is marked diverged at
that epoch, never reported as a loss of 0. ``--quick`` runs the first and
last setting of each sweep.
"""

from experiments import _contract, _data, _flags, _output
from keras_apml import progress, report
from keras_apml.imbalance import BEST_STRATEGY, STRATEGIES

VALIDATION_FRACTION = 0.2  # of the training images: the set that picks each sweep's best setting
SWEEPS = {
    "lr": ("lr", (1e-10, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)),
    "batch": ("batch_size", (4, 8, 16, 32, 64)),
    "epochs": ("epochs", None),  # one long run, scored after every epoch
    # Each optimiser at its Keras default learning rate, for the same number of epochs.
    "optimizer": ("optimizer", (("sgd", 0.01), ("adam", 1e-3), ("rmsprop", 1e-3))),
    "weight_decay": ("weight_decay", (0.0, 1e-4, 1e-3, 1e-2, 1e-1)),
    "schedule": ("schedule", ("constant", "step", "plateau", "cosine")),
}


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("hyperparams", __doc__.splitlines()[0])
    _flags.add_seed(p, "seed of the validation split and of every training")
    _flags.add_benchmark(p)
    _flags.add_recipe(p)
    p.add_argument("--sweep", type=_flags.names_list(tuple(SWEEPS), "--sweep"), default=list(SWEEPS),
                   help=f"sweeps to run (default: all): {', '.join(SWEEPS)}")
    p.add_argument("--strategy", default=BEST_STRATEGY, choices=tuple(STRATEGIES),
                   help="imbalance strategy of every run")
    p.add_argument("--max-epochs", type=_flags.positive_int(100_000), default=None,
                   help="length of the epochs sweep's run (default: 3x the recipe's epochs)")
    _flags.add_cluster(p)
    return _data.choose_data(p, p.parse_args(argv))


def configurations(sweep, recipe, quick=False):
    """``[(label, recipe)]`` of one sweep: the recipe with one setting changed per configuration.

    ``quick`` keeps the first and last setting of each sweep.
    """
    field, values = SWEEPS[sweep]
    values = (values[0], values[-1]) if quick else values
    if sweep == "optimizer":
        return [(name, recipe.replace(optimizer=name, lr=lr)) for name, lr in values]
    return [(f"{field}={value:g}" if isinstance(value, float) else f"{field}={value}",
             recipe.replace(**{field: value})) for value in values]


def trainings(args, recipe, splits):
    """Every training of the sweeps asked for: ``{"<sweep>: <label>": (recipe, keyword arguments of
    trainer.train_and_score)}``, each configuration scored on ``splits`` once trained, the epochs sweep's one
    long run on dev after every epoch."""
    jobs = {}
    for sweep in args.sweep:
        if sweep == "epochs":
            epochs = args.max_epochs or 3 * recipe.epochs
            tracked = {"dev": splits["dev"][:2]}
            if splits["dev"][2] is not None:
                tracked["dev_true"] = (splits["dev"][0], splits["dev"][2])
            jobs[f"epochs: 1..{epochs}"] = recipe.replace(epochs=epochs), {"splits": {}, "tracked": tracked}
            continue
        for label, config in configurations(sweep, recipe, args.quick):
            jobs[f"{sweep}: {label}"] = config, {"splits": splits}
    return jobs


def sweep_record(sweep, done):
    """One sweep's results ``{label: record}`` and curves ``{label: (history, diverged epoch)}`` from its
    finished trainings ``done`` (``{"<sweep>: <label>": train_and_score's dict}``)."""
    results, curves = {}, {}
    for key, finished in done.items():
        name, label = key.split(": ", 1)
        if name != sweep:
            continue
        result = finished["result"]
        results[label] = {"recipe": finished["recipe"].to_dict(), "training": result.to_dict(),
                          "timing": result.timing(), **(finished["metrics"] or {})}
        curves[label] = (result.history, result.diverged_epoch)
    return results, curves


def report_sweep(run, sweep, done):
    """Record, plot and report one finished sweep (not ``epochs``); returns its best label."""
    from keras_apml import plots

    results, curves = sweep_record(sweep, done)
    scores = {k: r["validation"]["balanced_accuracy"] for k, r in results.items() if "validation" in r}
    tied = [k for k, v in scores.items() if v == max(scores.values())]
    best = tied[0] if tied else None  # on a tie, the first in the sweep's order
    run.record(sweep, {"configurations": results, "best": best, "tied": tied})
    plot = run.save_figure(plots.loss_curves(curves, f"{sweep} sweep: loss per epoch"), f"sweep_{sweep}.png")
    run.add_section(sweep, sweep_section(sweep, results, tied, plot))
    return best


def report_epochs_sweep(run, result):
    """Record, plot and report the epochs sweep's long run: balanced accuracy on validation and dev against
    epochs; returns its best epoch."""
    from keras_apml import plots

    history = {label: result.history.get(f"{key}_balanced_accuracy", [])
               for label, key in (("validation", "val"), ("dev (observed)", "dev"), ("dev (true)", "dev_true"))
               if f"{key}_balanced_accuracy" in result.history}
    scores = history["validation"]
    tied = [e for e, v in enumerate(scores, start=1) if v == max(scores)] if scores else []
    best = tied[0] if tied else None  # on a tie, the fewest epochs
    run.record("epochs", {"balanced_accuracy_per_epoch": history, "best": best, "tied": tied,
                          "training": result.to_dict(), "timing": result.timing()})
    plot = run.save_figure(plots.metric_curves(history, "balanced accuracy", "Balanced accuracy per epoch",
                                               best=best), "sweep_epochs.png")
    run.add_section("epochs", epochs_sweep_section(tied, result, plot))
    return best


def sweep_section(sweep, results, tied, plot_png):
    """``experiments.hyperparams``: one sweep's configurations, the diverged ones marked, and its best (``tied``:
    every setting of the highest validation balanced accuracy, the one taken first)."""
    def last(result, key):
        return (result["training"]["history"].get(key) or [None])[-1]

    rows = []
    for label, r in results.items():
        val, dev = r.get("validation"), r.get("dev")
        true = (dev or {}).get("true_labels")
        rows.append((label, r["training"]["status"], r["training"]["epochs_run"], last(r, "loss"),
                     last(r, "val_loss"), val and val["balanced_accuracy"], true and true["balanced_accuracy"],
                     dev and dev["balanced_accuracy"], r["timing"]["fit_seconds"]))
    table = report.markdown_table(["setting", "status", "epochs", "train loss", "validation loss",
                                   "validation balanced acc.", "dev balanced acc. (true)",
                                   "dev balanced acc. (observed)", "fit seconds"], rows)
    if not tied:
        verdict = "**Every configuration diverged.**"
    elif len(tied) == 1:
        verdict = f"**Best {sweep}: `{tied[0]}`** (highest validation balanced accuracy)."
    else:
        score = results[tied[0]]["validation"]["balanced_accuracy"]
        verdict = (f"**A tie for best {sweep}**: {', '.join(f'`{t}`' for t in tied)} reach the same validation "
                   f"balanced accuracy ({score:.4f}); the first, `{tied[0]}`, is named best.")
    return f"## Sweep: {sweep}\n\n{verdict}\n\n{table}\n\n![{sweep}]({plot_png})"


def epochs_sweep_section(tied, train_result, plot_png):
    """``experiments.hyperparams``: the epoch of highest validation balanced accuracy in one long run (``tied``:
    every epoch that reached it)."""
    span = f"over {report.plural(train_result.epochs_run, 'epoch')}, {train_result.status}"
    if not tied:
        verdict = f"**No epoch was scored** ({span})."
    elif len(tied) == 1:
        verdict = f"**Best epochs: {tied[0]}** (highest validation balanced accuracy {span})."
    else:
        verdict = (f"**A tie for best epochs**: epochs {', '.join(map(str, tied))} reach the same validation "
                   f"balanced accuracy ({span}); the fewest, {tied[0]}, is named best.")
    return f"## Sweep: epochs\n\n{verdict}\n\n![epochs]({plot_png})"


def hyperparams_base_section(recipe_text, strategy, fit, validation, dev):
    """``experiments.hyperparams``: the base recipe and the images each part of the study uses."""
    return (f"Base recipe: {recipe_text}; strategy `{strategy}`. Training on {fit} images, validation on "
            f"{validation} (observed labels), dev {dev}.")


def best_settings_section(best):
    """``experiments.hyperparams``: the best setting of each sweep."""
    return "## Best setting of each sweep\n\n" + "\n".join(f"- {k}: `{v}`" for k, v in best.items())


def main(argv=None):
    args = parse_args(argv)
    recipe = _flags.resolve_recipe(args)
    with _output.cluster_tasks(args) as tasks:
        return study(args, recipe, tasks)


def study(args, recipe, tasks):
    """Every sweep's trainings (in turn, or as ``tasks`` on a cluster), each sweep reported in the flags' order."""
    from keras_apml import trainer

    bench = _data.load(args, "benchmark").with_validation(VALIDATION_FRACTION, args.seed)  # drawn as every study's
    fit, val, dev = bench["train"], bench["validation"], bench["dev"]
    trainer.check(recipe, fit.x, len(bench.class_names))
    _output.start_tasks(args, tasks)
    run = _output.open_run("hyperparams", args, recipe=recipe.to_dict())
    shared = tasks.share(fit.x, fit.y, val.x, val.y, dev.x, dev.y, dev.y_true)
    splits = {"validation": (*shared[2:4], None), "dev": shared[4:]}
    jobs = trainings(args, recipe, splits)
    run.add_section("base", hyperparams_base_section(recipe.describe(), args.strategy, len(fit), len(val),
                                                     len(dev)))
    step = progress.StudyProgress(len(jobs), args.quiet)
    work = [(label, (args.strategy, args.seed, *shared[:2], config),
             {"class_names": bench.class_names, "validation": splits["validation"][:2], **settings})
            for label, (config, settings) in jobs.items()]
    done = {label: {**finished, "recipe": jobs[label][0]}
            for label, finished in tasks.run(trainer.train_and_score, work, announce=step)}
    done = {label: done[label] for label in jobs}  # in the sweeps' order, however the tasks finished
    best = {}
    for sweep in args.sweep:
        if sweep == "epochs":
            long_run = next(d["result"] for label, d in done.items() if label.startswith("epochs:"))
            best[sweep] = report_epochs_sweep(run, long_run)
        else:
            best[sweep] = report_sweep(run, sweep, done)
    run.note("best", best)
    run.add_section("summary", best_settings_section(best))
    return _output.finish(run, args)


if __name__ == "__main__":
    _contract.run(main)
