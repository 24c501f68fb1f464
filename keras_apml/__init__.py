"""keras_apml: reproducible small-image classification studies with Keras 3.

The modules form layers, and every import points down (tests/test_layers.py
checks it, function-local imports included). From the bottom: the foundation
(errors, atomic, progress, machine, cache, safe_pickle, image_files, npz);
settings as plain data, free of TensorFlow (recipe, imbalance, noise); data
(stratified, label_files, dataset, cifar10, benchmark, folders,
augmentation, pipeline: every source returns one dataset.Dataset); Keras's
pieces (custom_objects, keras_internals, models, backbones, evaluation,
optimization, checkpoints, devices, plots); the trainer,
the one way a model is built and trained (trainer); the studies' library
modules (cluster, features, label_noise, adversarial, report, review,
review_server). The command
lines in ``experiments/`` stand on top and are the only place for argparse and
run directories.
"""

__version__ = "0.1.0"
