"""Every study's --quick run from two checkouts of this project, and the metrics.json values that differ.

    python -m benchmarks.same_metrics --before /tmp/base --after . --work /tmp/same_metrics

A refactoring that keeps the results keeps every value: each study runs
``--quick`` on the same synthetic image-folder tree (and the same two model
files, for the studies that take a trained model) in a fresh process with
each checkout first on ``PYTHONPATH``; the two metrics.json files are then
compared value by value, timings and dates left out. Prints each difference
(none: ``same``) and exits 1 if there is any. Every run is made afresh: a
``--work`` directory that holds an earlier comparison's runs is refused.
"""

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

STUDIES = ("baseline", "imbalance", "label_noise", "hyperparams", "train", "cifar_transfer", "adversarial",
           "feature_extraction")
EXTRA = {"cifar_transfer": ["--weights", "none"], "feature_extraction": ["--model", "{work}/vgg19.keras"],
         "adversarial": ["--model", "{work}/small_cnn.keras"]}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Keys whose values are wall times or dates, not results.
UNTIMED = ("seconds", "finished", "timing", "started", "time")


def make_inputs(work):
    """A CIFAR-like tree (240 train, 30 test images per class, PNG) and two untrained model files, made once."""
    from PIL import Image

    root = work / "tree"
    if not root.is_dir():
        rng = np.random.default_rng(0)
        for split, n in (("train", 240), ("test", 30)):
            for label, name in enumerate(CLASSES):
                (root / split / name).mkdir(parents=True)
                for i in range(n):
                    pixels = (rng.integers(0, 256, (32, 32, 3)) // 2 + label * 25) % 256
                    Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i:05d}.png")
    if not (work / "small_cnn.keras").is_file():
        import keras

        from keras_apml import models

        keras.utils.set_random_seed(0)
        models.small_cnn(num_classes=3).save(work / "small_cnn.keras")
        models.vgg19_transfer(weights=None).save(work / "vgg19.keras")
    return root


def run_study(checkout, name, root, out, work):
    """``python -m experiments.<name> --quick`` with ``checkout`` first on the path, into the new directory
    ``out``; its metrics.json."""
    extra = [a.format(work=work) for a in EXTRA.get(name, [])]
    env = {**os.environ, "PYTHONPATH": str(checkout), "KERAS_APML_CACHE": str(out.parent / "cache")}
    subprocess.run([sys.executable, "-m", f"experiments.{name}", "--data-dir", str(root), "--out", str(out),
                    "--quick", "--quiet", *extra], env=env, cwd=checkout, check=True)
    return json.loads((out / "metrics.json").read_text())


def differences(before, after, where=""):
    """``[(key path, before, after)]`` of the values that differ, timings and dates left out."""
    if any(word in where.rsplit("/", 1)[-1] for word in UNTIMED):
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        return [d for k in sorted(set(before) | set(after), key=str)
                for d in differences(before.get(k), after.get(k), f"{where}/{k}")]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in differences(b, a, f"{where}[{i}]")]
    same = before == after or (isinstance(before, float) and isinstance(after, float)
                               and math.isnan(before) and math.isnan(after))
    return [] if same else [(where, before, after)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="the checkout before the change")
    p.add_argument("--after", type=Path, required=True, help="the checkout after it")
    p.add_argument("--work", type=Path, default=Path("/tmp/same_metrics"), help="the inputs and run directories")
    p.add_argument("--studies", default=",".join(STUDIES), help="comma-separated studies")
    args = p.parse_args(argv)
    earlier = [args.work / side for side in ("before", "after") if (args.work / side).exists()]
    if earlier:  # their runs would be taken for this comparison's: results of other checkouts, or of older code
        p.error(f"{earlier[0]} holds the runs of an earlier comparison: give another --work")
    args.work.mkdir(parents=True, exist_ok=True)
    root = make_inputs(args.work)
    found = 0
    for name in args.studies.split(","):
        runs = [run_study(c.resolve(), name, root, args.work / side / name, args.work)
                for side, c in (("before", args.before), ("after", args.after))]
        diff = differences(*runs)
        found += len(diff)
        print(f"{name}: {'same' if not diff else f'{len(diff)} values differ'}", flush=True)
        for key, b, a in diff[:20]:
            print(f"  {key}: {str(b)[:80]} -> {str(a)[:80]}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
