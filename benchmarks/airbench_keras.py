"""One training of our Keras airbench (``recipe.AIRBENCH``) on images in an .npz: the peer of
:mod:`benchmarks.airbench_torch`, with the same command line and the same JSON line.

    python -m benchmarks.airbench_keras --data IMAGES.npz --epochs 2 --seed 0
"""

import json

import numpy as np

from benchmarks.airbench_parts import train_and_score
from experiments import _contract, _flags


def main(argv=None):
    parser = _flags.ArgumentParser(prog="python -m benchmarks.airbench_keras", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--epochs", type=_flags.positive_int(100), required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    from keras_apml.dataset import Split
    from keras_apml.recipe import AIRBENCH

    with np.load(args.data) as data:
        train, test = Split(data["x_train"], data["y_train"]), Split(data["x_test"], data["y_test"])
    result = train_and_score(AIRBENCH.replace(epochs=args.epochs), train, test, args.seed)
    print(json.dumps({"side": "keras", "epochs": args.epochs, "seed": args.seed, **result,
                      "keras": keras.__version__}), flush=True)


if __name__ == "__main__":
    _contract.run(main)
