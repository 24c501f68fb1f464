"""keras_apml: reproducible small-image classification studies with Keras 3."""

__version__ = "0.1.0"
