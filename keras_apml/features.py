"""Features computed once and cached: a model's outputs on image arrays, stored
as .npz under the cache directory, keyed by the model and the images."""

import hashlib
import time

import numpy as np

from keras_apml import cache, evaluation


def file_sha256(path):
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(model):
    """The SHA-256 of a model's weight values (so two models with equal weights share a key)."""
    digest = hashlib.sha256(model.name.encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def cached_outputs(model, images, key, about, batch_size=256, verbose=0, mirror=False):
    """Return ``({name: model outputs on images[name]}, info)``, computing them only on a cache miss.

    ``images`` maps names to uint8 image arrays; ``key`` identifies the model
    (a file hash and a layer, or :func:`weights_sha256`); ``about`` says what
    the outputs are, for the cache's listing. A model with named outputs (a
    dict) gives ``"name.output"`` entries. ``verbose`` shows the progress of a
    computation (Keras's convention). ``mirror`` gives each image the mean of
    its outputs and its left-right mirror image's. ``info`` records whether the
    cache was hit, the seconds spent and the cache file.
    """
    key += ":mirror-averaged" if mirror else ""
    name = f"features-{hashlib.sha256((key + cache.arrays_sha256(images)).encode()).hexdigest()[:24]}.npz"
    start = time.perf_counter()
    outputs = cache.load(name)
    if outputs is not None and {k.partition(".")[0] for k in outputs} == set(images):
        return outputs, {"cache": "hit", "seconds": round(time.perf_counter() - start, 3),
                         "file": str(cache.cache_dir() / name)}
    outputs = {}
    for split, x in images.items():
        out = evaluation.predict_proba(model, x, batch_size, mirror=True, verbose=verbose, what=split) if mirror \
            else evaluation.predict(model, x, batch_size, verbose, what=split)
        outputs.update({f"{split}.{k}": v for k, v in out.items()} if isinstance(out, dict) else {split: out})
    cache.save(name, outputs, about)
    return outputs, {"cache": "miss" if cache.is_enabled() else "off", "seconds": round(time.perf_counter() - start, 3),
                     "file": str(cache.cache_dir() / name)}
