"""Our Keras airbench against airbench94 in PyTorch, on the same CPU and the same images, interleaved.

    pip install torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu   # only for this benchmark
    python -m benchmarks.airbench_side_by_side --data-dir /tmp/data/cifar10-jpeg --epochs 2,5,10 --runs 2

Both train on cifar_transfer's 40,000 CIFAR-10 training images (its
stratified 80/20 split, seed 0) with their own schedule for the number of
epochs asked, without a validation pass, and are scored on the 10,000 test
images plainly (tta0), with flip TTA (tta1) and TTA level 2 (tta2). Each
training is its own process (TensorFlow and PyTorch never share one, nor
their thread pools), run in turn: for each epoch count, for each run (seed
0, 1, ...), PyTorch then Keras. The images are decoded once and handed to
both in one .npz. Keras side: :mod:`benchmarks.airbench_keras`
(``recipe.AIRBENCH``); PyTorch side: :mod:`benchmarks.airbench_torch`,
written from airbench94's recipe. Images
per second: training images (full batches) over training seconds, the
whitening fit included on both sides. Prints one JSON line per training,
then the means per side and epoch count.
"""

import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.timing import report
from experiments import _contract, _flags
from keras_apml.errors import InputError

SIDES = {"pytorch": "benchmarks.airbench_torch", "keras": "benchmarks.airbench_keras"}


def parse_args(argv=None):
    """The benchmark's command line."""
    parser = _flags.ArgumentParser(prog="python -m benchmarks.airbench_side_by_side",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 directory (image-folder tree or batches)")
    parser.add_argument("--epochs", type=epoch_counts, default=[2, 5, 10], help="comma-separated epoch counts")
    parser.add_argument("--runs", type=_flags.positive_int(10), default=2, help="runs (seeds 0, 1, ...) per count")
    parser.add_argument("--sides", type=_flags.names_list(tuple(SIDES), "--sides"), default=list(SIDES),
                        help="comma-separated, from pytorch, keras")
    parser.add_argument("--out", help="also write the figures as JSON here")
    return parser.parse_args(argv)


def epoch_counts(text):
    """argparse type: comma-separated epoch counts, each from 1 to 100."""
    return [_flags.positive_int(100)(part) for part in text.split(",")]


def one_training(side, data, epochs, seed):
    """Run one training in its own process; its JSON line as a dict."""
    done = subprocess.run([sys.executable, "-m", SIDES[side], "--data", str(data), "--epochs", str(epochs),
                           "--seed", str(seed)], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"the {side} training failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if "pytorch" in args.sides and importlib.util.find_spec("torch") is None:
        raise InputError("the PyTorch side needs PyTorch, installed for this benchmark only: pip install "
                         "torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu (or --sides keras)")
    import numpy as np

    from keras_apml import cifar10

    data = cifar10.dataset(args.data_dir).with_validation(0.2, seed=0)  # cifar_transfer's 40,000 training images
    results = []
    with tempfile.TemporaryDirectory() as work:
        images = Path(work) / "images.npz"
        np.savez(images, x_train=data["train"].x, y_train=data["train"].y, x_test=data["test"].x,
                 y_test=data["test"].y)
        for epochs in args.epochs:
            for seed in range(args.runs):
                for side in args.sides:
                    results.append(one_training(side, images, epochs, seed))
                    print(json.dumps(results[-1]), flush=True)
    means = {}
    for side in args.sides:
        for epochs in args.epochs:
            runs = [r for r in results if r["side"] == side and r["epochs"] == epochs]
            means[f"{side} {epochs} epochs"] = {key: round(statistics.mean(r[key] for r in runs), 4)
                                                for key in ("tta0", "tta1", "tta2", "images_per_second")}
    report({"training_images": len(data["train"]), "runs": args.runs, "means": means, "results": results}, args.out)


if __name__ == "__main__":
    _contract.run(main)
