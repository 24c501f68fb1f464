"""Benchmark the input pipeline and one cifar_convnet epoch, augmentation on versus off.

    python -m benchmarks.pipeline --data-dir /tmp/data/cifar10-jpeg

Measures, on real CIFAR-10: decoding (first load) and cached load times,
images/s of the tf.data pipeline with and without augmentation, and one
training epoch of ``cifar_convnet`` on 40,000 images with augmentation on and
off (median of the epochs after the first, so tracing is not counted). Writes the figures as JSON
when ``--out`` is given.
"""

import tempfile
import time

from benchmarks.timing import median_epoch_seconds, report
from experiments import _contract, _flags
from keras_apml.recipe import CIFAR_AUGMENT as AUGMENT  # run 3's augmentation


def parse_args(argv=None):
    """The benchmark's command line."""
    parser = _flags.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 directory (image-folder tree or batches)")
    parser.add_argument("--images", type=int, default=40000, help="training images (default: 40,000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    return parser.parse_args(argv)


def pipeline_throughput(x, y, batch_size, augmentation, passes=2):
    """Images per second of one pass through the tf.data pipeline (best of ``passes``)."""
    from keras_apml.pipeline import make_dataset

    ds = make_dataset(x, y, batch_size, shuffle=True, seed=0, augmentation=augmentation)
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for _ in ds:
            pass
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def epoch_seconds(x, y, batch_size, augmentation, epochs=5):
    """Median wall time of cifar_convnet's training epochs after the first."""
    from keras_apml import models, optimization, trainer
    from keras_apml.pipeline import make_dataset

    trainer.set_seed(0)
    model = optimization.compile_model(models.cifar_convnet(), optimization.make_optimizer("adam"))
    ds = make_dataset(x, y, batch_size, shuffle=True, seed=0, augmentation=augmentation)
    return median_epoch_seconds(model, ds, epochs)


def main(argv=None):
    args = parse_args(argv)
    import os

    from keras_apml import cifar10
    from keras_apml.augmentation import Augmentation

    with tempfile.TemporaryDirectory(prefix="keras_apml_bench_") as cache:
        os.environ["KERAS_APML_CACHE"] = cache  # empty, so the first load decodes
        start = time.perf_counter()
        (x_train, y_train), _ = cifar10.load_cifar10(args.data_dir)
        first_load = time.perf_counter() - start
        start = time.perf_counter()
        cifar10.load_cifar10(args.data_dir)
        cached_load = time.perf_counter() - start
    x, y = x_train[: args.images], y_train[: args.images]
    augmentation = Augmentation.from_string(AUGMENT, seed=0)

    figures = {"images": len(x), "batch_size": args.batch_size, "augmentation": AUGMENT,
               "load_seconds_first": round(first_load, 2), "load_seconds_cached": round(cached_load, 2)}
    figures["pipeline_images_per_s_plain"] = round(pipeline_throughput(x, y, args.batch_size, None))
    figures["pipeline_images_per_s_augmented"] = round(pipeline_throughput(x, y, args.batch_size, augmentation))
    figures["epoch_seconds_plain"] = round(epoch_seconds(x, y, args.batch_size, None), 2)
    figures["epoch_seconds_augmented"] = round(epoch_seconds(x, y, args.batch_size, augmentation), 2)
    ratio = figures["epoch_seconds_augmented"] / figures["epoch_seconds_plain"]
    figures["augmented_over_plain_epoch"] = round(ratio, 3)
    report(figures, args.out)
    return 0


if __name__ == "__main__":
    _contract.run(main)
