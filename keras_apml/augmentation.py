"""ImageDataGenerator-style augmentation built from Keras preprocessing layers.

Keras 3 no longer ships ``ImageDataGenerator``; :class:`Augmentation` takes its
argument names and builds a ``keras.layers.Pipeline`` that runs inside a
tf.data map (online) or materialises augmented copies (offline). Images are
float32 in [0, 1].
"""

import dataclasses
import math

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
import numpy as np

from keras_apml.errors import InputError, check_number

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
# ImageDataGenerator's interpolation_order (spline order) as the Keras layers' interpolation.
INTERPOLATIONS = {0: "nearest", 1: "bilinear"}
# ImageDataGenerator arguments with no counterpart here, refused by name.
UNSUPPORTED = (
    "featurewise_center", "samplewise_center", "featurewise_std_normalization",
    "samplewise_std_normalization", "zca_whitening", "zca_epsilon", "channel_shift_range",
    "rescale", "preprocessing_function", "data_format", "validation_split", "dtype",
)


@keras.saving.register_keras_serializable(package="keras_apml")
class RandomBrightnessScale(keras.layers.Layer):
    """Multiply each image by a factor drawn from [lower, upper], as ImageDataGenerator's brightness_range.

    ``keras.layers.RandomBrightness`` adds an offset instead; this keeps the
    multiplicative meaning users of ``brightness_range`` expect.
    """

    def __init__(self, lower, upper, value_range=(0.0, 1.0), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.lower, self.upper, self.value_range, self.seed = float(lower), float(upper), tuple(value_range), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_jit = False

    def call(self, images, training=True):
        if not training:
            return images
        batch = keras.ops.shape(images)[0]
        factor = keras.random.uniform(
            (batch, 1, 1, 1), self.lower, self.upper, dtype=images.dtype, seed=self.seed_generator
        )
        return keras.ops.clip(images * factor, *self.value_range)

    def get_config(self):
        return {**super().get_config(), "lower": self.lower, "upper": self.upper,
                "value_range": self.value_range, "seed": self.seed}


class _AlternatingFlip(keras.layers.Layer):
    """Every image of a batch mirrored left-right in the odd epochs of the run (``epoch``: a variable the training
    sets as each epoch begins, :meth:`Augmentation.epoch_callback`)."""

    def __init__(self, epoch, **kwargs):
        super().__init__(**kwargs)
        self.epoch = epoch

    def call(self, images, training=True):
        if not training:
            return images
        odd = keras.ops.equal(keras.ops.mod(keras.ops.convert_to_tensor(self.epoch), 2), 1)
        return keras.ops.where(odd, keras.ops.flip(images, axis=2), images)


class _SetEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


@dataclasses.dataclass(frozen=True, repr=False)
class Augmentation:
    """An augmentation spec with ImageDataGenerator's argument names, built from Keras layers.

    ``Augmentation(horizontal_flip=True, width_shift_range=0.125,
    height_shift_range=0.125, fill_mode="constant", cval=0.0)`` behaves as the
    ImageDataGenerator call of the same arguments. Shifts are fractions of the
    image size, rotation and shear are in degrees, ``zoom_range`` z means zoom
    factors in [1 - z, 1 + z] (or a [lower, upper] pair), ``brightness_range`` is
    a multiplicative [lower, upper] pair. ``interpolation_order`` 1 (the
    default, bilinear) resamples shifted pixels, 0 (nearest) keeps them whole,
    so a shifted image stays as sharp as the original. Colour jitter: ``contrast_range``,
    ``saturation_range`` and ``hue_range`` are factors for
    ``keras.layers.RandomColorJitter``. ``alternating_flip`` is airbench's
    flip in place of a random one: each image mirrored at random once
    (:meth:`preflip`, seeded), then every image mirrored together in every
    other epoch, so that an image is seen both ways in any two epochs in a row
    (the training sets the epoch through :meth:`epoch_callback`). Each value
    is checked (and a zoom written as z stored as its pair) when the spec is
    made.
    """

    rotation_range: float = 0.0
    width_shift_range: float = 0.0
    height_shift_range: float = 0.0
    shear_range: float = 0.0
    zoom_range: float | tuple | None = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    alternating_flip: bool = False
    brightness_range: tuple | None = None
    fill_mode: str = "nearest"
    cval: float = 0.0
    interpolation_order: int = 1
    contrast_range: float | tuple | None = None
    saturation_range: float | tuple | None = None
    hue_range: float | tuple | None = None
    seed: int | None = None

    def __post_init__(self):
        checked = {
            "rotation_range": _number("rotation_range", self.rotation_range, 0, 180),
            "width_shift_range": _number("width_shift_range", self.width_shift_range, 0, 1, high_open=True),
            "height_shift_range": _number("height_shift_range", self.height_shift_range, 0, 1, high_open=True),
            "shear_range": _number("shear_range", self.shear_range, 0, 90, high_open=True),  # tan(90) is infinite
            "cval": _number("cval", self.cval, 0, 1),  # a fill value of the [0, 1] images
            "zoom_range": _zoom(self.zoom_range),
        }
        for name in ("horizontal_flip", "vertical_flip", "alternating_flip"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"augmentation argument {name} is true or false, got {getattr(self, name)!r}")
        if self.alternating_flip and self.horizontal_flip:
            raise InputError("alternating_flip is a left-right flip of its own: give it or horizontal_flip, not both")
        if self.fill_mode not in FILL_MODES:
            raise InputError(f"fill_mode must be one of {FILL_MODES}, got {self.fill_mode!r}")
        if isinstance(self.interpolation_order, bool) or self.interpolation_order not in INTERPOLATIONS:
            raise InputError(f"interpolation_order must be 0 (nearest) or 1 (bilinear), got "
                             f"{self.interpolation_order!r}")
        checked["interpolation_order"] = int(self.interpolation_order)
        if self.brightness_range is not None:
            checked["brightness_range"] = _pair("brightness_range", self.brightness_range, 0, None)
        for name in ("contrast_range", "saturation_range", "hue_range"):
            value = getattr(self, name)
            if value is not None:
                checked[name] = _pair(name, value, 0, 1) if isinstance(value, tuple) else _number(name, value, 0, 1)
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        if self.alternating_flip:  # the epoch, as the training tells it (epoch_callback)
            object.__setattr__(self, "_epoch", keras.Variable(0, dtype="int32", trainable=False, name="epoch"))
        if not self.layers().layers:
            raise InputError(f"the augmentation spec augments nothing: {self!r}")

    @staticmethod
    def arguments():
        """The argument names this spec accepts."""
        return [field.name for field in dataclasses.fields(Augmentation)]

    @classmethod
    def from_string(cls, text, seed=None):
        """Parse ``"horizontal_flip,width_shift_range=0.125,fill_mode=constant"`` into a spec."""
        kwargs = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            name = name.strip()
            if name == "seed":
                raise InputError("the augmentation's seed is the run's (--seed), not part of the spec")
            if name not in cls.arguments():
                why = "an ImageDataGenerator argument this spec does not support" if name in UNSUPPORTED else \
                    "unknown"
                raise InputError(f"augmentation argument {name!r} is {why}; supported: {', '.join(cls.arguments())}")
            if name in kwargs:
                raise InputError(f"augmentation argument {name!r} is given twice")
            try:
                kwargs[name] = _parse_value(value.strip()) if value else True
            except ValueError:
                raise InputError(f"cannot parse augmentation argument {item!r}") from None
        if not kwargs:
            raise InputError(f"the augmentation spec {text!r} names no argument")
        return cls(seed=seed, **kwargs)

    def __repr__(self):
        default = {field.name: field.default for field in dataclasses.fields(self)} | {"zoom_range": None}  # checked
        active = {name: value for name, value in dataclasses.asdict(self).items()
                  if (value is not None and value != default[name]) or name == "fill_mode"}
        return f"Augmentation({', '.join(f'{k}={v!r}' for k, v in active.items())})"

    def layers(self):
        """Build the spec as a ``keras.layers.Pipeline`` of preprocessing layers."""
        p, seed = dataclasses.asdict(self), self.seed
        fill = dict(fill_mode=p["fill_mode"], fill_value=p["cval"],
                    interpolation=INTERPOLATIONS[p["interpolation_order"]], seed=seed)
        layers = []
        flip = {(True, False): "horizontal", (False, True): "vertical", (True, True): "horizontal_and_vertical"}.get(
            (bool(p["horizontal_flip"]), bool(p["vertical_flip"])))
        if flip:
            layers.append(keras.layers.RandomFlip(flip, seed=seed))
        if p["alternating_flip"]:
            layers.append(_AlternatingFlip(self._epoch, name="alternating_flip"))
        if p["rotation_range"]:
            layers.append(keras.layers.RandomRotation(p["rotation_range"] / 360.0, **fill))
        if p["shear_range"]:
            layers.append(keras.layers.RandomShear(x_factor=math.tan(math.radians(p["shear_range"])), **fill))
        if p["zoom_range"]:
            lower, upper = p["zoom_range"]
            # ImageDataGenerator zooms out for factors > 1, as RandomZoom does for positive ones.
            factor = (lower - 1.0, upper - 1.0)
            layers.append(keras.layers.RandomZoom(factor, factor, **fill))
        if p["width_shift_range"] or p["height_shift_range"]:
            layers.append(keras.layers.RandomTranslation(p["height_shift_range"], p["width_shift_range"], **fill))
        if p["brightness_range"]:
            layers.append(RandomBrightnessScale(*p["brightness_range"], seed=seed))
        jitter = {k: p[f"{k}_range"] for k in ("contrast", "saturation", "hue") if p[f"{k}_range"]}
        if jitter:
            layers.append(keras.layers.RandomColorJitter(
                value_range=(0, 1), **{f"{k}_factor": v for k, v in jitter.items()}, seed=seed
            ))
        return keras.layers.Pipeline(layers, name="augmentation")

    def preflip(self, x):
        """``x`` with each image mirrored left-right at random (seeded by the spec's seed), once, for
        ``alternating_flip``; the images themselves are left alone."""
        flipped = np.random.default_rng(self.seed).random(len(x)) < 0.5
        out = np.array(x, copy=True)
        out[flipped] = out[flipped][:, :, ::-1]
        return out

    def epoch_callback(self):
        """The Keras callback that tells ``alternating_flip`` the epoch as each one begins."""
        return _SetEpoch(self._epoch)

    def apply_offline(self, x, y, copies=1, batch_size=256):
        """Return ``x`` and ``y`` followed by ``copies`` augmented copies (uint8 in, uint8 out)."""
        if copies < 0:
            raise InputError(f"copies must be >= 0, got {copies}")
        pipeline = self.layers()
        xs, ys = [x], [y]
        for _ in range(copies):
            out = np.empty_like(x)
            for start in range(0, len(x), batch_size):
                batch = x[start:start + batch_size].astype(np.float32) / 255.0
                out[start:start + batch_size] = np.rint(
                    np.clip(keras.ops.convert_to_numpy(pipeline(batch, training=True)), 0, 1) * 255
                ).astype(np.uint8)
            xs.append(out)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)


def _number(name, value, low, high, high_open=False):
    """One augmentation argument: a finite number in [low, high] (or [low, high))."""
    return check_number(f"augmentation argument {name}", value, low, high, high_open=high_open)


def _zoom(value):
    """ImageDataGenerator's zoom_range: a z in [0, 1) as the factors (1 - z, 1 + z), a pair as it is; 0: None."""
    if isinstance(value, tuple):
        lower, upper = _pair("zoom_range", value, 0, None)
        if lower == 0:
            raise InputError(f"zoom_range factors must be above 0, got {value}")
        return lower, upper
    if value is None:
        return None
    zoom = _number("zoom_range", value, 0, 1, high_open=True)
    return (1.0 - zoom, 1.0 + zoom) if zoom else None


def _pair(name, value, low, high):
    """A ``lower:upper`` pair of finite numbers, lower <= upper, within [low, high] (high None: no bound)."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise InputError(f"augmentation argument {name} is a lower:upper pair, got {value!r}")
    lower, upper = (check_number(f"augmentation argument {name}", v, low, high) for v in value)
    if lower > upper:
        raise InputError(f"augmentation argument {name}: lower {lower:g} above upper {upper:g}")
    return lower, upper


def _parse_value(text):
    """Parse a CLI value: a number, a bool, a ``lo:hi`` pair, or a string."""
    if ":" in text:
        return tuple(float(v) for v in text.split(":"))
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text
