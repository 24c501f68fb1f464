"""Pretrained backbones from ``keras.applications`` as feature extractors for small images: the images resized
inside the model to the size it expects, its own preprocessing, its pooled last features."""

from pathlib import Path

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
from keras import layers

from keras_apml.custom_objects import ApplicationPreprocess
from keras_apml.errors import InputError

# The five the studies name in their help; any other keras.applications model is taken too.
NAMED = ("EfficientNetV2B0", "ResNet50V2", "ConvNeXtTiny", "MobileNetV3Small", "VGG19")
# The input size each model was trained at where it is not 224 (keras.applications' documentation).
SIZES = {"InceptionV3": 299, "InceptionResNetV2": 299, "Xception": 299, "NASNetLarge": 331,
         "EfficientNetB1": 240, "EfficientNetB2": 260, "EfficientNetB3": 300, "EfficientNetB4": 380,
         "EfficientNetB5": 456, "EfficientNetB6": 528, "EfficientNetB7": 600, "EfficientNetV2B1": 240,
         "EfficientNetV2B2": 260, "EfficientNetV2B3": 300, "EfficientNetV2S": 384, "EfficientNetV2M": 480,
         "EfficientNetV2L": 480}


def names():
    """Every model ``keras.applications`` offers, by name."""
    return sorted(name for name in dir(keras.applications) if name[0].isupper()
                  and callable(getattr(keras.applications, name)))


def check(name, weights="imagenet", image_size=None):
    """Refuse an unknown backbone name, a weights file that does not exist or is not .h5, or a size out of 32..1024."""
    if name not in names():
        raise InputError(f"unknown backbone {name!r}: a keras.applications model, e.g. {', '.join(NAMED)}")
    if weights not in ("imagenet", None) and not Path(weights).is_file():
        raise InputError(f"backbone weights file {weights} does not exist")
    if weights not in ("imagenet", None) and not str(weights).endswith(".h5"):
        raise InputError(f"backbone weights file {weights}: expected an .h5 file, as keras.applications "
                         "downloads them")
    if image_size is not None and not 32 <= image_size <= 1024:
        raise InputError(f"backbone input size {image_size}: expected 32 to 1024")


def backbone(name, weights="imagenet", image_size=None, input_shape=(32, 32, 3)):
    """A ``keras.applications`` model as a frozen feature extractor of [0, 1] images of ``input_shape``: resized
    inside it to ``image_size`` (default: the size the model was trained at), preprocessed as its family is,
    globally average-pooled.

    ``weights``: "imagenet" (downloaded by Keras, then cached), None (random: its features mean nothing) or a
    weights file.
    """
    check(name, weights, image_size)
    size = image_size or SIZES.get(name, 224)
    constructor = getattr(keras.applications, name)
    try:
        base = constructor(include_top=False, weights=weights, input_shape=(size, size, 3), pooling="avg")
    except Exception as e:  # keras.utils.get_file raises a bare Exception when offline
        if weights != "imagenet":
            raise InputError(f"cannot load {name} weights from {weights}: {str(e).splitlines()[0][:200]}") from None
        raise InputError(f"could not download the {name} ImageNet weights (no network?): download them elsewhere "
                         "and pass --weights PATH") from None
    base.trainable = False
    inputs = keras.Input(tuple(input_shape), name="pixels")
    x = layers.Resizing(size, size, name="resize")(inputs)
    x = ApplicationPreprocess(constructor.__module__.rsplit(".", 1)[-1], name="preprocess")(x)
    return keras.Model(inputs, base(x), name=f"{name}_features")
