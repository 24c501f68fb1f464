"""Car/truck/cat: every imbalance strategy from the same initial weights, mean ± std over seeds, on dev.

    python -m experiments.imbalance --data benchmark --data-dir /tmp/data/cifar10-jpeg
    python -m experiments.imbalance --strategies none,class_weight,two_stage --seeds 0,1,2,3,4

For each seed, every strategy's model starts from the same initial weights
(built right after seeding). With ``--features MODEL.keras`` every strategy
trains a softmax head on that model's cached features instead of a conv net
on the images (the augmentation strategies, which need images, do not apply).
Dev metrics are computed against the true labels (the headline) and the
observed, noisy ones. The strategy with the best mean
balanced accuracy (true labels where known) is saved as best.keras, its first
seed's model: the default model of ``experiments.adversarial`` (with
``--features``, best_head.keras: a head that takes features, not images).
"""

from experiments import _contract, _data, _flags, _output
from keras_apml import progress, report
from keras_apml.errors import InputError
from keras_apml.imbalance import STRATEGIES

# Every default of this study, then what --features and --quick change.
DEFAULTS = {"strategies": list(STRATEGIES), "seeds": [0, 1, 2]}
FEATURES = {"strategies": [name for name, s in STRATEGIES.items() if s.on_features]}  # no augmentation of images
QUICK = {"seeds": [0]}


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("imbalance", __doc__.splitlines()[0])
    _flags.add_benchmark(p)
    _flags.add_recipe(p)
    _flags.add_features(p)
    p.add_argument("--strategies", type=_flags.names_list(tuple(STRATEGIES), "--strategies"),
                   default=None, help=f"comma-separated strategies (default: all: "
                                      f"{', '.join(DEFAULTS['strategies'])}; --features: "
                                      f"{', '.join(FEATURES['strategies'])})")
    _flags.add_seeds(p, "every strategy's training", DEFAULTS, QUICK)
    _flags.add_cluster(p)
    args = _data.choose_data(p, p.parse_args(argv))
    if _flags.on_features(args) and args.strategies:
        refused = [n for n in args.strategies if n not in FEATURES["strategies"]]
        if refused:
            p.error(f"{', '.join(refused)} augment{'s' if len(refused) == 1 else ''} images: with --features "
                    f"choose from {', '.join(FEATURES['strategies'])}")
    return _flags.resolve_defaults(args, DEFAULTS, (_flags.on_features(args), FEATURES), (args.quick, QUICK))


def headline(summary):
    """The label set a choice is made on: true labels where known."""
    return summary.get("true") or summary["observed"]


def strategies_section(recipe_text, seeds, descriptions, summaries, class_names, bars_png):
    """``experiments.imbalance``: every strategy, mean ± std over the seeds."""
    described = "\n".join(f"- `{n}`: {d}" for n, d in descriptions.items())
    return (f"## Strategies\n\nRecipe: {recipe_text}. {report.seed_words(seeds)}; every strategy of a seed starts "
            f"from the same initial weights.\n\n{described}\n\n" + report.seed_table(summaries, class_names)
            + f"\n\n![balanced accuracy per strategy]({bars_png})")


def best_strategy_section(best, labels, balanced_accuracy, seed):
    """``experiments.imbalance``: the strategy chosen and why."""
    mean = "Mean dev" if balanced_accuracy[1] is not None else "Dev"
    return (f"## Best: `{best}`\n\n{mean} balanced accuracy ({labels} labels) {report.mean_std(balanced_accuracy)}. "
            f"Its seed-{seed} model is saved as `best.keras`.")


def main(argv=None):
    args = parse_args(argv)
    recipe = _flags.resolve_recipe(args)
    with _output.cluster_tasks(args) as tasks:
        return study(args, recipe, tasks)


def study(args, recipe, tasks):
    """Every strategy and seed trained (in turn, or as ``tasks`` on a cluster), compared, the best one saved."""
    from keras_apml import evaluation, plots, trainer

    bench = _data.load(args, "benchmark")
    features = None
    if _flags.on_features(args):
        bench, features = _data.with_features(args, bench)
    names = bench.class_names
    trainer.check(recipe, bench["train"].x, len(bench.class_names))
    _output.start_tasks(args, tasks)
    run = _output.open_run("imbalance", args, recipe=recipe.to_dict(), features=features)
    if features:
        run.add_section("features", report.backbone_section(features))
    step = progress.StudyProgress(len(args.strategies) * len(args.seeds), args.quiet)
    per_seed, first_models, jobs = {}, {}, {}
    for seed, name in ((s, n) for s in args.seeds for n in args.strategies):
        earlier = (run.recorded(name) or {}).get("seeds", {}).get(str(seed))
        if earlier is not None:  # trained by an earlier call of this run
            step(f"{name} seed {seed}", kept=True)
            per_seed.setdefault(name, {})[str(seed)] = earlier
        else:
            jobs[f"{name} seed {seed}"] = (name, seed)
    x_train, y_train, x_dev, y_dev, y_dev_true = tasks.share(bench["train"].x, bench["train"].y, bench["dev"].x,
                                                             bench["dev"].y, bench["dev"].y_true)
    # dev is scored after every epoch for the curves only: strategies are compared on the final models
    work = [(label, (name, seed, x_train, y_train, recipe, {"dev": (x_dev, y_dev, y_dev_true)}, names),
             {"validation": (x_dev, y_dev), "keep_model": seed == args.seeds[0]})
            for label, (name, seed) in jobs.items()]
    for label, done in tasks.run(trainer.train_and_score, work, announce=step):
        name, seed = jobs[label]
        per_seed.setdefault(name, {})[str(seed)] = {
            "dev": done["metrics"] and done["metrics"]["dev"], "training": done["result"].to_dict(),
            "timing": done["result"].timing(), "fitted_class_counts": done["fitted_class_counts"]}
        run.record(name, {"seeds": per_seed[name]})
        if done["model"] is not None:
            first_models[name] = done["model"], done["result"]
    # in the order of the flags, however the tasks finished: the same table (and float sums) as a run in turn
    per_seed = {n: {str(s): per_seed[n][str(s)] for s in args.seeds} for n in args.strategies}

    summaries = {}
    for name, by_seed in per_seed.items():
        finished = [r["dev"] for r in by_seed.values() if r["dev"] is not None]
        summaries[name] = report.summarize_seeds(finished, names) if finished else {}
        run.record(name, {"seeds": by_seed, "summary": summaries[name],
                          "diverged_seeds": [int(s) for s, r in by_seed.items() if r["dev"] is None]})
    scored = {n: headline(s) for n, s in summaries.items() if s}
    if not scored:
        raise InputError("every run diverged: lower --lr")
    label_note = "true" if bench["dev"].y_true is not None else "observed"
    series = {f"{labels} dev labels": (
        [summaries[n].get(labels, {}).get("balanced_accuracy", (0, None))[0] or 0 for n in scored],
        [summaries[n].get(labels, {}).get("balanced_accuracy", (0, None))[1] for n in scored])
        for labels in ("true", "observed") if any(labels in summaries[n] for n in scored)}
    spread = f"mean ± std over {len(args.seeds)} seeds" if len(args.seeds) > 1 else f"seed {args.seeds[0]} only"
    bars = run.save_figure(plots.grouped_bars(list(scored), series, "dev balanced accuracy",
                                              f"Imbalance strategies ({spread})",
                                              chance=(1 / len(names), f"chance (1/{len(names)})")),
                           "balanced_accuracy.png")
    best = max(scored, key=lambda n: scored[n]["balanced_accuracy"][0])
    if best not in first_models:  # its first seed was trained by an earlier call: the same seed trains it again
        model, result, _ = trainer.train(best, bench["train"].x, bench["train"].y, recipe, seed=args.seeds[0],
                                         validation=(bench["dev"].x, bench["dev"].y))
        first_models[best] = (model, result)
    model, result = first_models[best]
    model_file = "best_head.keras" if features else "best.keras"  # a head on features is no image model to attack
    run.save_model(model, model_file)
    run.note("best", {"strategy": best, "model_file": model_file, "seed": args.seeds[0],
                      "recipe": recipe.to_dict(), "chosen_on": f"mean dev balanced accuracy, {label_note} labels"})
    descriptions = {n: STRATEGIES[n].description for n in args.strategies}
    run.add_section("strategies", strategies_section(recipe.describe(), args.seeds, descriptions, summaries,
                                                     names, bars))
    run.add_section("best", best_strategy_section(best, label_note, scored[best]["balanced_accuracy"],
                                                  args.seeds[0]))
    _output.add_model_report(run, f"best_{best}", evaluation.evaluate_splits(model, {"dev": bench["dev"]}, names),
                             names, model, result, validation="dev (observed labels)")
    return _output.finish(run, args, f"best strategy: {best}")


if __name__ == "__main__":
    _contract.run(main)
