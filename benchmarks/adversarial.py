"""Benchmark FGSM: the 8-eps sweep over all CIFAR-10 test images, batched versus one image at a time.

    python -m benchmarks.adversarial --data-dir /tmp/data/cifar10-jpeg \
        --model runs/cifar_transfer/<stamp>/3_augmented.keras

Without ``--model`` an untrained ``cifar_convnet`` is attacked (the cost is
the same). The sweep time includes scoring each eps's adversarial images.
Two one-at-a-time loops are timed on ``--loop-images`` images and scaled to
the whole test set and all eps: the library's compiled FGSM called on single
images, and the plain eager loop a study would write (a GradientTape per image).
"""

import time

from benchmarks.timing import report
from experiments import _contract, _flags

EPS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


def parse_args(argv=None):
    """The benchmark's command line."""
    parser = _flags.ArgumentParser(prog="python -m benchmarks.adversarial", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 directory (image-folder tree or batches)")
    parser.add_argument("--model", default=None, help="a 10-class .keras model (default: untrained cifar_convnet)")
    parser.add_argument("--loop-images", type=int, default=200, help="images the one-at-a-time loop is timed on")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    return parser.parse_args(argv)


def eager_fgsm(model, x, y, eps):
    """FGSM as a per-image loop body is usually written: an eager GradientTape, no tf.function."""
    import keras
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=False))
    return tf.clip_by_value(x + eps * tf.sign(tape.gradient(loss, x)), 0.0, 1.0).numpy()


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from keras_apml import adversarial, cifar10, evaluation, models

    _, (x, y) = cifar10.load_cifar10(args.data_dir)
    x = x.astype(np.float32) / 255.0
    model = models.load_model(args.model) if args.model else models.cifar_convnet()
    adversarial.fgsm(model, x[:args.batch_size], y[:args.batch_size], 0.01, batch_size=args.batch_size)  # trace
    start = time.perf_counter()
    accuracy = {}
    for eps in EPS:
        x_adv, _ = adversarial.fgsm(model, x, y, eps, batch_size=args.batch_size)
        accuracy[f"{eps:g}"] = round(float(np.mean(evaluation.predict_labels(model, x_adv, 1000) == y)), 4)
    sweep = time.perf_counter() - start
    attack_only = time.perf_counter()
    for eps in EPS:
        adversarial.fgsm(model, x, y, eps, batch_size=args.batch_size)
    attack_only = time.perf_counter() - attack_only
    n = args.loop_images
    adversarial.fgsm(model, x[:1], y[:1], 0.01)  # trace the single-image shape
    start = time.perf_counter()
    for i in range(n):
        adversarial.fgsm(model, x[i:i + 1], y[i:i + 1], 0.01)
    loop = (time.perf_counter() - start) * len(x) / n * len(EPS)
    start = time.perf_counter()
    for i in range(n):
        eager_fgsm(model, x[i:i + 1], y[i:i + 1], 0.01)
    eager = (time.perf_counter() - start) * len(x) / n * len(EPS)
    report({
        "images": len(x), "eps": list(EPS), "model": args.model or "untrained cifar_convnet",
        "sweep_seconds_with_scoring": round(sweep, 1), "sweep_seconds_attack_only": round(attack_only, 1),
        "one_at_a_time_compiled_seconds_scaled": round(loop, 1),
        "speedup_vs_compiled_loop": round(loop / attack_only, 1),
        "one_at_a_time_eager_seconds_scaled": round(eager, 1),
        "speedup_vs_eager_loop": round(eager / attack_only, 1),
        "loop_timed_on_images": n, "accuracy_per_eps": accuracy,
    }, args.out)
    return 0


if __name__ == "__main__":
    _contract.run(main)
