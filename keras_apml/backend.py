"""TensorFlow, imported once and quietly: every module that uses Keras imports this one first.

TensorFlow's C++ start-up lines (absl's, oneDNN's, the CUDA probe's) go to
file descriptor 2 before any log level takes effect, and its Python logger
warns each time a study builds another model (retracing): a script that
imports keras_apml, as the README's does, would print them among its
results. Here TensorFlow is imported, and its devices listed, with file
descriptor 2 sent to /dev/null, and its logger set to errors only. A process
that imported TensorFlow before keeps it as it is.
"""

import logging
import os
import sys


def import_tensorflow_quietly():
    """Import TensorFlow and probe its devices with the C++ start-up chatter sent to /dev/null (once)."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes: studies build many models on purpose


import_tensorflow_quietly()
