"""Turn a clean image-folder dataset into a study dataset with known truth: chosen class counts, then wrong labels.

    python -m experiments.make_dataset --data-dir /tmp/data/cifar10-jpeg --preset car_truck_cat --out /tmp/ctc
    python -m experiments.make_dataset --data-dir /tmp/data/cifar10-jpeg --out /tmp/animals \
        --classes bird,deer,horse --train-counts bird=3000,deer=400,horse=300 --noise "deer->bird:0.3"

The source is any image-folder tree (ROOT/<class>/*, or ROOT/train/<class>/*
with ROOT/test/<class>/*). From each of its train and test splits the given
number of images of each class is drawn (default: all), shuffled, and then
relabelled: exactly round(rate x n) images of a class per --noise pair, and
--noise-rate of every class to another class, uniformly; all seeded by
--seed (train and test draw separately, as the car/truck/cat benchmark
does). The new tree OUT/train/<observed class>/NNNNNN.<ext> (and OUT/test/;
from a flat source a flat tree, OUT/<observed class>/NNNNNN.<ext>, which the
studies split as they split any) holds copies of the files under neutral
names, OUT/truth.csv the true class of each (path, label), and
OUT/dataset.json how it was made and its counts.
OUT must not exist; it appears whole or not at all.
"""

import argparse
import csv
import json
import os
import shutil
from pathlib import Path

from experiments import _contract, _flags
from keras_apml.errors import InputError

# The car/truck/cat benchmark: CIFAR-10's automobiles as "car", its counts, and two thirds of the cats as car.
PRESETS = {"car_truck_cat": {"classes": "car=automobile,truck,cat", "train_counts": "car=4476,truck=449,cat=700",
                             "test_counts": "car=503,truck=51,cat=71", "noise": "cat->car:0.676"}}


def parse_args(argv=None):
    """The command line of this command."""
    p = _flags.ArgumentParser(prog="python -m experiments.make_dataset", description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
                              epilog="\n".join(__doc__.splitlines()[5:]))
    p.add_argument("--data-dir", required=True, help="the clean source tree")
    p.add_argument("--out", required=True, help="the new dataset's directory (must not exist)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="car_truck_cat: the course's benchmark (classes, counts and noise; other flags override)")
    p.add_argument("--classes", default=None, metavar="NAMES",
                   help="the study's classes, comma-separated, each a source class or new=source "
                        "(e.g. car=automobile,truck) (default: every source class)")
    p.add_argument("--train-counts", default=None, metavar="CLASS=N,...",
                   help="images of each study class drawn from the source's train split (default: all)")
    p.add_argument("--test-counts", default=None, metavar="CLASS=N,...",
                   help="the same from its test split, where it has one (default: all)")
    p.add_argument("--noise", default=None, metavar="A->B:RATE,...",
                   help="asymmetric noise: that share of class A labelled B, exactly (e.g. cat->car:0.676)")
    p.add_argument("--noise-rate", type=_flags.number(0, 1), default=0.0,
                   help="symmetric noise: that share of every class labelled another class, chosen uniformly")
    _flags.add_seed(p, "seed of the draws and the noise")
    args = p.parse_args(argv)
    for key, value in PRESETS.get(args.preset, {}).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def study_classes(text, source_names):
    """``[(study name, source label)]`` from ``--classes`` (default: the source's own classes)."""
    if text is None:
        return [(name, i) for i, name in enumerate(source_names)]
    chosen = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, _, source = item.partition("=")
        source = source or name
        if source not in source_names:
            raise InputError(f"--classes: no source class {source!r}; the source has {', '.join(source_names)}")
        chosen.append((name, source_names.index(source)))
    names = [n for n, _ in chosen]
    if len(chosen) < 2 or len(set(names)) != len(names) or len({s for _, s in chosen}) != len(chosen):
        raise InputError(f"--classes needs at least 2 distinct classes from distinct source classes, got {text!r}")
    return chosen


def counts(text, classes, available, flag):
    """``[(source label, n)]`` per study class from ``--train-counts``/``--test-counts`` (default: all)."""
    asked = {}
    for item in (part.strip() for part in (text or "").split(",") if part.strip()):
        name, _, n = item.partition("=")
        if name not in [c for c, _ in classes]:
            raise InputError(f"{flag}: no study class {name!r}; the classes are {', '.join(c for c, _ in classes)}")
        if not n.isdigit() or int(n) < 1:
            raise InputError(f"{flag}: {item!r} needs a positive whole count")
        asked[name] = int(n)
    out = []
    for name, source in classes:
        n = asked.get(name, available.get(source, 0))
        if n > available.get(source, 0):
            raise InputError(f"{flag}: {name} asks for {n} images; the source split has {available.get(source, 0)}")
        if n < 1:
            raise InputError(f"{flag}: the source split has no image of {name}")
        out.append((source, n))
    return out


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from keras_apml import folders, noise

    out, root = Path(args.out).expanduser(), Path(args.data_dir).expanduser()
    inside = [(a, b) for a, b in ((out, root), (root, out)) if a.resolve().is_relative_to(b.resolve())]
    if inside:
        raise InputError(f"--out {out} and --data-dir {root} overlap ({inside[0][0]} lies in {inside[0][1]}): the "
                         "new dataset and its source would mix; choose an --out outside it")
    if out.exists():
        raise InputError(f"{out} exists; make_dataset writes a new directory (remove it or choose another --out)")
    source_names, listing, _ = folders.scan(root)
    listing = {s: f for s, f in listing.items() if s != "val"}  # "all": a flat source, written flat
    classes = study_classes(args.classes, source_names)
    names = [n for n, _ in classes]
    pairs = noise.parse_pairs(args.noise, names) if args.noise else []
    if args.test_counts and "test" not in listing:
        raise InputError(f"--test-counts: {root} has no test split")
    plans = {}
    for split, files in listing.items():
        labels = np.array([label for _, label in files])
        flag = "--test-counts" if split == "test" else "--train-counts"
        wanted = counts(args.test_counts if split == "test" else args.train_counts, classes,
                        dict(zip(*np.unique(labels, return_counts=True))), flag)
        plans[split] = (files, noise.draw(labels, wanted, np.random.default_rng([args.seed, len(plans)]), pairs,
                                          args.noise_rate, split=f"{root} {split}"))
    write(out, plans, names, args)
    print(f"dataset: {out} (truth in {out / 'truth.csv'})", flush=True)
    return 0


def write(out, plans, names, args):
    """Copy the drawn files under their observed class, with truth.csv and dataset.json, into ``out`` at once."""
    import numpy as np

    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        rows, summary = [], {}
        for split, (files, (idx, y_true, y_observed)) in plans.items():
            for i, (j, true, observed) in enumerate(zip(idx, y_true, y_observed)):
                source = Path(args.data_dir).expanduser() / files[j][0]
                path = Path("" if split == "all" else split) / names[observed] / f"{i:06d}{source.suffix.lower()}"
                (partial / path.parent).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, partial / path)
                rows.append((path.as_posix(), names[true]))
            summary[split] = {
                "true": {n: int(np.sum(y_true == k)) for k, n in enumerate(names)},
                "observed": {n: int(np.sum(y_observed == k)) for k, n in enumerate(names)},
                "wrong": {f"{names[a]}->{names[b]}": int(np.sum((y_true == a) & (y_observed == b)))
                          for a in range(len(names)) for b in range(len(names))
                          if a != b and np.any((y_true == a) & (y_observed == b))}}
        with open(partial / "truth.csv", "w", newline="", encoding="utf-8") as f:  # quoted where a name needs it
            csv.writer(f, lineterminator="\n").writerows([("path", "label"), *rows])
        made = {k: v for k, v in vars(args).items() if k != "out"}
        (partial / "dataset.json").write_text(json.dumps({"made_with": made, "classes": names, "splits": summary},
                                                         indent=2) + "\n", encoding="utf-8")
        os.rename(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


if __name__ == "__main__":
    _contract.run(main, tensorflow=False)
