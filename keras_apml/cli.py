"""Command-line plumbing shared by every experiment: common flags and the
``error: ...`` / exit status 2 contract for bad input."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from keras_apml.errors import InputError  # noqa: E402


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error:`` line and exit status 2."""

    def error(self, message):
        raise InputError(f"{message} (see --help)")


def experiment_parser(name, description):
    """A parser with the flags every experiment takes."""
    parser = ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    common = parser.add_argument_group("common options")
    common.add_argument("--data-dir", default=None,
                        help="CIFAR-10 directory: Keras's cifar-10-batches-py or an image-folder tree "
                             "train/<class>/*, test/<class>/* (default: $KERAS_APML_DATA, else download)")
    common.add_argument("--out", default=None,
                        help=f"the run directory itself (default: runs/{name}/<timestamp>/)")
    common.add_argument("--seed", type=int, default=0, help="random seed for data draws and training (default: 0)")
    common.add_argument("--epochs", type=positive_int, default=None, help="training epochs")
    common.add_argument("--batch-size", type=positive_int, default=None, help="batch size")
    common.add_argument("--quick", action="store_true",
                        help="a tiny subset and one epoch: the whole study end to end in about a minute")
    common.add_argument("--quiet", action="store_true", help="no progress bars; errors and the run directory only")
    return parser


def benchmark_options(parser):
    """Add --train-pickle/--dev-pickle: the course's pickles in place of the benchmark drawn from CIFAR-10."""
    group = parser.add_argument_group("car/truck/cat data")
    group.add_argument("--train-pickle", default=None,
                       help="the course's train pickle instead of the benchmark (then only observed labels exist)")
    group.add_argument("--dev-pickle", default=None, help="the course's dev pickle (with --train-pickle)")
    return parser


def parse_seeds(text):
    """``"0,1,2"`` -> [0, 1, 2]; one ``error:`` line for anything else."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds needs at least one seed and no repeats, got {text!r}")
    return seeds


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def import_tensorflow_quietly():
    """Import TensorFlow and probe its devices with the C++ start-up chatter sent to /dev/null.

    TensorFlow's native logging writes to file descriptor 2 before
    TF_CPP_MIN_LOG_LEVEL takes effect; without this, ``error:`` would not be
    the only line a failed command prints.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.get_logger().setLevel("ERROR")  # retracing notes: studies build many models on purpose
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def run(main, argv=None):
    """Call ``main(argv)``; an InputError becomes one ``error:`` line on stderr and exit status 2."""
    try:
        if not any(flag in (argv if argv is not None else sys.argv) for flag in ("-h", "--help")):
            import_tensorflow_quietly()
        status = main(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("error: interrupted; run again with the same --out to resume", file=sys.stderr)
        status = 130
    sys.exit(status or 0)
