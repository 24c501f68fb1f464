"""Models (Keras functional API, named layers). Each image model takes float32
pixels in [0, 1] (``linear``: features) and carries its own preprocessing, so a
saved ``.keras`` file is self-contained. The classifier's softmax stays float32
under mixed precision."""

import os
from pathlib import Path

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
import numpy as np
from keras import layers

from keras_apml.custom_objects import (
    PartialIdentity,
    PatchWhitening,
    ScaledBias,
    TwoStageProbabilities,
    VGG19Preprocess,
    torch_uniform,
)
from keras_apml.errors import InputError
from keras_apml.folders import FileImages
from keras_apml.pipeline import make_dataset

INPUT_SHAPE = (32, 32, 3)
VGG19_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


def fit_standardizer(x_train):
    """A ``keras.layers.Normalization`` (per-channel z-score) adapted on training images only."""
    norm = layers.Normalization(axis=-1, name="standardize")
    if isinstance(x_train, np.ndarray):
        norm.adapt(np.asarray(x_train, dtype=np.float32) / 255.0 if x_train.dtype == np.uint8 else x_train)
    else:  # images streamed from their files: the same statistics, batch by batch
        norm.adapt(make_dataset(x_train, batch_size=256))
    return norm


WHITENING_IMAGES = 5000  # images whose patches fit the whitening layer, as airbench


def fit_whitening(x_train, patch_size=2):
    """A :class:`PatchWhitening` layer adapted on (up to ``WHITENING_IMAGES``, evenly spaced) training images."""
    step = max(1, len(x_train) // WHITENING_IMAGES)
    sample = x_train[::step][:WHITENING_IMAGES]
    if isinstance(sample, FileImages):
        sample = np.stack(list(sample))
    sample = np.asarray(sample, dtype=np.float32) / (255.0 if sample.dtype == np.uint8 else 1.0)
    whitening = PatchWhitening(patch_size, name="whiten")
    whitening.adapt(sample)
    return whitening


def _input(standardizer, input_shape=INPUT_SHAPE):
    """The model input in [0, 1], standardised first when a fitted Normalization is given."""
    inputs = keras.Input(tuple(input_shape), name="pixels" if len(input_shape) == 3 else "features")
    return inputs, (standardizer(inputs) if standardizer is not None else inputs)


def _classifier(x, num_classes, kernel_initializer="glorot_uniform"):
    """The final softmax layer, kept in float32 for mixed precision."""
    return layers.Dense(num_classes, activation="softmax", dtype="float32", kernel_initializer=kernel_initializer,
                        name="predictions")(x)


def small_cnn(num_classes=3, dropout=0.0, standardizer=None, input_shape=INPUT_SHAPE):
    """The course baseline (LeNet-style): 61,411 parameters for 3 classes of 32x32 images (16x16 and up)."""
    inputs, x = _input(standardizer, input_shape)
    x = layers.Conv2D(6, 5, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 5, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout2")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="small_cnn")


def cifar_convnet(num_classes=10, dropout=0.25, l2=0.0, standardizer=None, input_shape=INPUT_SHAPE):
    """The CIFAR-10 conv net: 72,922 parameters (72,826 trainable) for 10 classes of 32x32 images (32x32 and up)."""
    conv = dict(
        activation="relu",
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
    )
    inputs, x = _input(standardizer, input_shape)
    x = layers.Conv2D(16, 3, padding="valid", name="conv1", **conv)(x)
    x = layers.Conv2D(16, 3, padding="valid", name="conv2", **conv)(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.Conv2D(32, 3, padding="same", name="conv3", **conv)(x)
    x = layers.Conv2D(32, 3, padding="same", name="conv4", **conv)(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.Dropout(dropout, name="dropout1")(x)
    x = layers.Conv2D(64, 3, padding="valid", name="conv5", **conv)(x)
    x = layers.Conv2D(64, 3, padding="valid", name="conv6", **conv)(x)
    x = layers.Dropout(dropout, name="dropout2")(x)
    x = layers.MaxPooling2D(3, name="pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="cifar_convnet")


def airbench(num_classes=10, whitening=None, widths=(64, 256, 256), batchnorm_momentum=0.6, bias_scale=8.0,
             batchnorm_epsilon=1e-12, input_shape=INPUT_SHAPE):
    """airbench94's net in Keras: a :class:`PatchWhitening` layer, three blocks of conv-pool-BN-GELU-conv-BN-GELU
    of ``widths`` channels (BatchNorm without scale, momentum 0.6 and epsilon 1e-12 as airbench's, its bias a
    :class:`ScaledBias`; convolutions started as :class:`PartialIdentity`), a global max pool and a softmax on
    the pooled features over 9. 1,973,954 parameters for 10 classes (16x16 images and up).

    ``whitening``: a fitted layer (:func:`fit_whitening`); None leaves one to be fitted or loaded.
    """
    inputs = keras.Input(tuple(input_shape), name="pixels")
    x = (whitening or PatchWhitening(name="whiten"))(inputs)
    x = layers.Activation("gelu", name="whiten_gelu")(x)
    for block, width in enumerate(widths, 1):
        for conv in (1, 2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=PartialIdentity(),
                              name=f"block{block}_conv{conv}")(x)
            if conv == 1:
                x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
            x = layers.BatchNormalization(momentum=batchnorm_momentum, epsilon=batchnorm_epsilon, center=False,
                                          scale=False, name=f"block{block}_bn{conv}")(x)
            x = ScaledBias(bias_scale, name=f"block{block}_bias{conv}")(x)
            x = layers.Activation("gelu", name=f"block{block}_gelu{conv}")(x)
    x = layers.GlobalMaxPooling2D(name="features")(x)
    x = layers.Rescaling(1 / 9, name="logit_scale")(x)
    return keras.Model(inputs, _classifier(x, num_classes, torch_uniform()), name="airbench")


def linear(num_classes=3, dropout=0.0, standardizer=None, input_shape=(256,)):
    """A softmax on (standardised) features: multinomial logistic regression as a Keras model, the head trained on
    cached features of a backbone (``--features``); ``num_features * num_classes + num_classes`` parameters."""
    inputs, x = _input(standardizer, input_shape)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="linear")


def keras_models_dir():
    """Where ``keras.applications`` looks for weights before it downloads them: ``$KERAS_HOME/models``, else
    ``~/.keras/models`` (as ``keras.utils.get_file``)."""
    return Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser()) / "models"


def _vgg19_base(weights="imagenet", input_shape=INPUT_SHAPE):
    """VGG19 without its top, cut at ``block4_pool`` and frozen. ``weights``: "imagenet", None or a file;
    images of 32x32 and up."""
    if min(input_shape[:2]) < 32:
        raise InputError(f"VGG19 takes images of 32x32 and up, not {input_shape[0]}x{input_shape[1]}")
    if weights not in ("imagenet", None) and not Path(weights).is_file():
        raise InputError(f"VGG19 weights file {weights} does not exist")
    try:
        full = keras.applications.VGG19(include_top=False, weights=weights, input_shape=tuple(input_shape))
    except Exception as e:  # keras.utils.get_file raises a bare Exception when offline
        if weights != "imagenet":
            raise InputError(f"cannot load VGG19 weights from {weights}: {str(e).splitlines()[0][:200]}") from None
        raise InputError(
            f"could not download the VGG19 ImageNet weights (no network?): put {VGG19_NOTOP_FILE} (from a machine "
            f"online) in {keras_models_dir()} or pass --weights PATH, or try the study "
            "without them with --weights none (random weights: its VGG19 figures mean nothing)"
        ) from None
    base = keras.Model(full.input, full.get_layer("block4_pool").output, name="vgg19_block4")
    base.trainable = False
    return base


def _head_layers(num_classes, dropout):
    """The transfer head: Flatten, Dense 1024-BN-Dropout, Dense 512-BN-Dropout, softmax."""
    return [
        layers.Flatten(name="flatten"),
        layers.Dense(1024, activation="relu", name="fc1"),
        layers.BatchNormalization(name="bn1"),
        layers.Dropout(dropout, name="dropout1"),
        layers.Dense(512, activation="relu", name="fc2"),
        layers.BatchNormalization(name="bn2"),
        layers.Dropout(dropout, name="dropout2"),
        layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions"),
    ]


def vgg19_transfer(weights="imagenet", num_classes=10, dropout=0.5, base=None, input_shape=INPUT_SHAPE,
                   upsample=None):
    """Frozen VGG19 (cut at block4_pool, preprocessing inside) plus a dense head.

    13,219,402 parameters for 10 classes of 32x32 images: 2,631,178 trainable,
    10,588,224 not. ``base`` takes an already-built :func:`_vgg19_base`;
    ``upsample`` (a size) resizes the images to that square inside the model
    first (bilinear): ImageNet features of 32x32 images are weak.
    """
    size = (upsample, upsample, 3) if upsample else tuple(input_shape)
    base = base or _vgg19_base(weights, size)
    inputs = keras.Input(tuple(input_shape), name="pixels")
    x = inputs
    if upsample:
        x = layers.Resizing(upsample, upsample, interpolation="bilinear", name="vgg19_upsample")(x)
    x = base(VGG19Preprocess(name="vgg19_preprocess")(x), training=False)
    for layer in _head_layers(num_classes, dropout):
        x = layer(x)
    return keras.Model(inputs, x, name="vgg19_transfer")


def transfer_features(model):
    """The frozen part of a :func:`vgg19_transfer` model (pixels to base features), sharing its layers."""
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    x = inputs
    if "vgg19_upsample" in [layer.name for layer in model.layers]:
        x = model.get_layer("vgg19_upsample")(x)
    x = model.get_layer("vgg19_preprocess")(x)
    return keras.Model(inputs, model.get_layer("vgg19_block4")(x, training=False), name="transfer_features")


def transfer_head(model):
    """The head of a :func:`vgg19_transfer` model as a model of its own on base features.

    It shares its layers (and so its weights) with ``model``: training it on
    cached base outputs trains the full model.
    """
    base = model.get_layer("vgg19_block4")
    x = inputs = keras.Input(base.output.shape[1:], name="vgg19_features")
    for layer in model.layers[model.layers.index(base) + 1:]:
        x = layer(x)
    return keras.Model(inputs, x, name="transfer_head")


def feature_extractor(model, layer=None):
    """The model up to its penultimate layer (skipping dropout and a fixed rescaling), or up to the named
    ``layer``."""
    if layer is None:
        skip = (layers.Dropout, layers.InputLayer, layers.Rescaling)
        candidates = [lyr for lyr in model.layers[:-1] if not isinstance(lyr, skip)]
        if not candidates:
            raise InputError(f"model {model.name} has no layer before its output")
        target = candidates[-1]
    else:
        target = _named_layer(model, layer)
    return keras.Model(model.inputs, target.output, name=f"{model.name}_features")


def pooled_features(model, names):
    """Features from several depths: the named layers' outputs, each image-shaped one pooled to its channels'
    means and maxima, concatenated in order."""
    parts = []
    for name in names:
        out = _named_layer(model, name).output
        if len(out.shape) == 4:
            parts += [layers.GlobalAveragePooling2D(name=f"{name}_mean")(out),
                      layers.GlobalMaxPooling2D(name=f"{name}_max")(out)]
        elif len(out.shape) == 2:
            parts.append(out)
        else:
            raise InputError(f"layer {name!r} of {model.name} has outputs of shape {tuple(out.shape)}: "
                             "expected images (batch, height, width, channels) or vectors")
    pooled = parts[0] if len(parts) == 1 else layers.Concatenate(name="depths")(parts)
    return keras.Model(model.inputs, pooled, name=f"{model.name}_pooled")


def _named_layer(model, name):
    """The layer called ``name``, or an InputError listing the model's layers."""
    names = [lyr.name for lyr in model.layers]
    if name not in names:
        raise InputError(f"model {model.name} has no layer {name!r}; layers: {', '.join(names)}")
    return model.get_layer(name)


def two_stage(first, rest):
    """One model from two: ``first`` tells class 0 from the others, ``rest`` tells the others apart.

    p(0) = first's p(0); p(k) = first's p(not 0) * rest's p(k - 1). The
    result is an ordinary softmax-like classifier (saved, evaluated and
    attacked as any other model).
    """
    first = keras.Model(first.input, first.output, name="first_stage")  # same layers, unique names
    rest = keras.Model(rest.input, rest.output, name="second_stage")
    inputs = keras.Input(first.input_shape[1:], name="pixels")
    outputs = TwoStageProbabilities(dtype="float32", name="predictions")(first(inputs), rest(inputs))
    return keras.Model(inputs, outputs, name="two_stage")


def copy_weights(source, target, may_differ=("predictions",)):
    """Give ``target`` the weights of ``source``'s layers of the same name and shapes (transfer learning).

    Every layer with weights, in either model, must find its match, except
    those named in ``may_differ`` (by default the classifier, which differs
    with the number of classes); returns the names of the layers copied.
    """
    copied, unmatched = [], []
    for layer in target.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        match = next((lyr for lyr in source.layers if lyr.name == layer.name), None)
        theirs = match.get_weights() if match is not None else []
        if [w.shape for w in theirs] == [w.shape for w in weights]:
            layer.set_weights(theirs)
            copied.append(layer.name)
        elif layer.name not in may_differ:
            unmatched.append(layer.name)
    target_names = {lyr.name for lyr in target.layers}
    unmatched += [lyr.name for lyr in source.layers
                  if lyr.get_weights() and lyr.name not in target_names and lyr.name not in may_differ]
    if unmatched:
        raise InputError(f"models {source.name} and {target.name} differ in {', '.join(unmatched)} "
                         "(layers with weights, by name and shapes): not the same architecture")
    return copied


def load_model(path):
    """Load a .keras model (its layers and loss registered by :mod:`keras_apml.custom_objects`); a bad file is one
    InputError."""
    try:
        return keras.models.load_model(path)
    except Exception as e:  # Keras raises ValueError, OSError, zipfile errors... for a bad file
        raise InputError(f"cannot load model {path}: {str(e).splitlines()[0][:200]}") from None


def check_input_shape(model, path):
    """Refuse a model that does not take 32x32 RGB images."""
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape != INPUT_SHAPE:
        raise InputError(f"model {path} takes inputs of shape {model.input_shape}, not 32x32 RGB images "
                         f"{INPUT_SHAPE}")


BUILDERS = {"small_cnn": small_cnn, "cifar_convnet": cifar_convnet, "airbench": airbench, "linear": linear}
