"""Our airbench port with each of airbench94's parts on or off: test accuracy (plain, flip TTA, TTA level 2).

    python -m benchmarks.airbench_parts --data-dir /tmp/data/cifar10-jpeg --epochs 2 --variants port,lookahead

Each variant is ``recipe.AIRBENCH`` with some of airbench94's parts taken
out (:data:`VARIANTS`; "port": the port before it had any of them),
trained on the same 40,000 CIFAR-10 training images cifar_transfer trains on
(its stratified 80/20 split, seed 0), without a validation pass, the
weights of its last epoch kept, as airbench does; then scored on the 10,000
test images plainly, with flip TTA and with TTA level 2
(:func:`keras_apml.evaluation.predict_tta`). Prints one JSON line per
variant.
"""

import json
import time

from benchmarks.timing import report
from experiments import _contract, _flags
from keras_apml.recipe import AIRBENCH, AIRBENCH_AUGMENT

# The port as it was (Keras's EMA of the weights, a random flip per image, the whitening bias frozen), each of
# airbench94's parts it gained alone, and AIRBENCH as it is now (all of them).
RANDOM_FLIP = AIRBENCH_AUGMENT.replace("alternating_flip", "horizontal_flip")
PORT = {"ema": 0.95, "lookahead": None, "whiten_bias_epochs": None, "augment": RANDOM_FLIP, "schedule": "onecycle",
        "drop_remainder": False}
VARIANTS = {
    "port": PORT,
    "lookahead": {**PORT, "ema": None, "lookahead": 0.95},
    "whiten_bias": {**PORT, "whiten_bias_epochs": 3},
    "alternating_flip": {**PORT, "augment": AIRBENCH_AUGMENT},
    "lookahead+whiten_bias": {**PORT, "ema": None, "lookahead": 0.95, "whiten_bias_epochs": 3},
    "all": {},
    "all-triangle": {"schedule": "onecycle"},
    "all-drop_remainder": {"drop_remainder": False},
}


def parse_args(argv=None):
    """The benchmark's command line."""
    parser = _flags.ArgumentParser(prog="python -m benchmarks.airbench_parts", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 directory (image-folder tree or batches)")
    parser.add_argument("--epochs", type=_flags.positive_int(100), default=2, help="epochs of every variant")
    parser.add_argument("--variants", type=_flags.names_list(tuple(VARIANTS), "--variants"), default=list(VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=0, help="seed of every training")
    return parser.parse_args(argv)


def train_and_score(recipe, train, test, seed):
    """Train ``recipe``'s model on the ``train`` split without validation and score it on ``test`` at TTA levels
    0, 1 and 2: ``{tta0, tta1, tta2, train_seconds, images_per_second, loss}``."""
    from keras_apml import evaluation, trainer

    model = trainer.build(recipe, train.x, 10, seed)
    start = time.perf_counter()
    result, _, _ = trainer.fit(model, train.x, train.y, recipe, seed=seed)
    seconds = time.perf_counter() - start
    images = int(model.optimizer.iterations.numpy()) * recipe.batch_size if recipe.drop_remainder else \
        recipe.epochs * len(train)
    scores = {f"tta{level}": float((evaluation.predict_tta(model, test.x, level).argmax(1) == test.y).mean())
              for level in (0, 1, 2)}
    return {**scores, "train_seconds": round(seconds, 1), "images_per_second": round(images / seconds, 1),
            "loss": [round(v, 4) for v in result.history["loss"]]}


def main(argv=None):
    args = parse_args(argv)

    from keras_apml import cifar10

    data = cifar10.dataset(args.data_dir).with_validation(0.2, seed=0)  # cifar_transfer's 40,000 training images
    results = []
    for name in args.variants:
        recipe = AIRBENCH.replace(epochs=args.epochs, **VARIANTS[name])
        results.append({"variant": name, "changes": VARIANTS[name],
                        **train_and_score(recipe, data["train"], data["test"], args.seed)})
        print(json.dumps(results[-1]), flush=True)
    report({"epochs": args.epochs, "seed": args.seed, "training_images": len(data["train"]), "results": results})


if __name__ == "__main__":
    _contract.run(main)
