"""Benchmark VGG19 transfer learning: head epochs on cached base features versus end to end.

    python -m benchmarks.transfer --data-dir /tmp/data/cifar10-jpeg

With ``--weights none`` (ImageNet weights are unreachable offline; the cost is
the same), measures the one-off cost of computing the frozen base's outputs
for all 60,000 images, one head epoch on the cached outputs of 40,000 training
images, and one end-to-end epoch through the frozen base, timed on
``--end-to-end-images`` images and scaled to 40,000. Epoch times are medians
of the epochs after the first (which traces): on shared cores single epochs
of the same work differ by up to 2x.
"""

import tempfile

from benchmarks.timing import median_epoch_seconds, report
from experiments import _contract, _flags
from keras_apml.recipe import VGG19_HEAD


def parse_args(argv=None):
    """The benchmark's command line."""
    parser = _flags.ArgumentParser(prog="python -m benchmarks.transfer", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 directory (image-folder tree or batches)")
    parser.add_argument("--weights", default="none", help="VGG19 weights: none (default), imagenet, or a file")
    parser.add_argument("--train-images", type=int, default=40000, help="training images (default: 40,000)")
    parser.add_argument("--end-to-end-images", type=int, default=4000,
                        help="images the end-to-end epoch is timed on, then scaled (default: 4,000)")
    parser.add_argument("--batch-size", type=_flags.positive_int(2 ** 20), default=VGG19_HEAD.batch_size,
                        help=f"batch size, both ways (default: cifar_transfer's, {VGG19_HEAD.batch_size})")
    parser.add_argument("--steps-per-execution", type=_flags.positive_int(2 ** 20),
                        default=VGG19_HEAD.steps_per_execution,
                        help=f"batches per train-function call, both ways (default: cifar_transfer's, "
                             f"{VGG19_HEAD.steps_per_execution})")
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import os

    from keras_apml import cifar10, features, models, optimization, trainer
    from keras_apml.pipeline import make_dataset

    weights = None if args.weights.lower() == "none" else args.weights
    (x_train, y_train), (x_test, _) = cifar10.load_cifar10(args.data_dir)
    trainer.set_seed(0)
    model = models.vgg19_transfer(weights=weights)
    base, head = models.transfer_features(model), models.transfer_head(model)
    with tempfile.TemporaryDirectory(prefix="keras_apml_bench_") as cache:
        os.environ["KERAS_APML_CACHE"] = cache  # empty, so the base outputs are computed
        outputs, info = features.cached_outputs(base, {"train": x_train, "test": x_test},
                                                key=features.weights_sha256(base),
                                                about="VGG19 base outputs (benchmarks.transfer)")
    n = args.train_images
    spe = args.steps_per_execution
    optimization.compile_model(head, optimization.make_optimizer("adam"), steps_per_execution=spe)
    cached = make_dataset(outputs["train"][:n], y_train[:n], args.batch_size, shuffle=True, seed=0)
    head_epoch = median_epoch_seconds(head, cached, 6)
    m = args.end_to_end_images
    optimization.compile_model(model, optimization.make_optimizer("adam"), steps_per_execution=spe)
    pixels = make_dataset(x_train[:m], y_train[:m], args.batch_size, shuffle=True, seed=0)
    end_to_end_epoch = median_epoch_seconds(model, pixels, 4) * n / m
    figures = {
        "images_cached": len(x_train) + len(x_test),
        "caching_seconds": round(info["seconds"], 1),
        "train_images": n,
        "head_epoch_seconds_cached": round(head_epoch, 2),
        "end_to_end_epoch_seconds": round(end_to_end_epoch, 1),
        "end_to_end_timed_on_images": m,
        "speedup": round(end_to_end_epoch / head_epoch, 1),
        "batch_size": args.batch_size,
        "steps_per_execution": spe,
    }
    report(figures, args.out)
    return 0


if __name__ == "__main__":
    _contract.run(main)
