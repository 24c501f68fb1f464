"""The command lines: one runnable module per study (``python -m experiments.<name>``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up lines: set before its first import
