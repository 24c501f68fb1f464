"""The layers, initialiser and loss that keras_apml's saved models name, registered with Keras.

A ``.keras`` file names these by ``keras_apml>ClassName``; importing this
module (as :func:`keras_apml.models.load_model` and a cluster task's process
do) is what lets Keras rebuild them.
"""

from keras_apml import backend  # noqa: F401, I001 - first: TensorFlow imported quietly
import keras
import numpy as np
from keras import layers


@keras.saving.register_keras_serializable(package="keras_apml")
class PatchWhitening(layers.Layer):
    """A frozen convolution that whitens image patches (airbench's first layer): ``patch_size`` squares of the
    input, centred and projected on the principal axes of the training images' patches, scaled to unit variance,
    each axis given twice (+ and -, for the GELU after it). Fitted by :meth:`adapt`, never by training.
    """

    def __init__(self, patch_size=2, epsilon=5e-4, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.patch_size, self.epsilon = int(patch_size), float(epsilon)

    def build(self, input_shape):
        size, channels = self.patch_size, int(input_shape[-1])
        dims = size * size * channels
        self.kernel = self.add_weight(shape=(size, size, channels, 2 * dims), initializer="zeros",
                                      trainable=False, name="kernel")
        # The bias is a trainable variable of a frozen layer: made trainable (``layer.trainable = True``), it can
        # train for a recipe's first epochs (airbench's; keras_apml.optimization.TrainFor).
        self.bias = self.add_weight(shape=(2 * dims,), initializer="zeros", trainable=True, name="bias")
        self.bias.trainable = self.trainable

    def patches(self, images):
        """Every ``patch_size`` square of ``images`` (NHWC) as rows, in the kernel's (row, column, channel) order."""
        size = self.patch_size
        h, w = images.shape[1] - size + 1, images.shape[2] - size + 1
        squares = np.stack([np.stack([images[:, i:i + h, j:j + w] for j in range(size)], axis=-2)
                            for i in range(size)], axis=-3)
        return squares.reshape(-1, size * size * images.shape[-1])

    def adapt(self, images):
        """Fit the kernel and bias on float images in [0, 1] (NHWC): the patches' mean and covariance.

        Each axis is scaled by ``1 / sqrt(eigenvalue + epsilon * mean eigenvalue)``:
        axes of almost no variance are not blown up.
        """
        images = np.asarray(images, dtype=np.float32)
        if not self.built:
            self.build(images.shape)
        total, outer, count = 0.0, 0.0, 0
        for start in range(0, len(images), 500):
            rows = self.patches(images[start:start + 500]).astype(np.float64)
            total, outer, count = total + rows.sum(axis=0), outer + rows.T @ rows, count + len(rows)
        mean = total / count
        eigenvalues, eigenvectors = np.linalg.eigh(outer / count - np.outer(mean, mean))
        axes = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0) + self.epsilon * eigenvalues.mean())
        kernel = np.concatenate([axes, -axes], axis=1)
        self.kernel.assign(kernel.reshape(self.kernel.shape).astype(np.float32))
        self.bias.assign((-mean @ kernel).astype(np.float32))

    def call(self, images):
        return keras.ops.conv(images, self.kernel, padding="valid") + self.bias

    def save_own_variables(self, store):
        # the kernel first, then the bias, as files saved before the bias could train hold them
        store["0"], store["1"] = keras.ops.convert_to_numpy(self.kernel), keras.ops.convert_to_numpy(self.bias)

    def load_own_variables(self, store):
        self.kernel.assign(store["0"])
        self.bias.assign(store["1"])

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "epsilon": self.epsilon}


def torch_uniform(seed=None):
    """PyTorch's default initialisation of conv and dense weights: uniform in +-1/sqrt(fan_in)."""
    return keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform", seed=seed)


@keras.saving.register_keras_serializable(package="keras_apml")
class PartialIdentity(keras.initializers.Initializer):
    """airbench's conv initialisation: PyTorch's default, with the first ``min(in, out)`` filters the identity
    (``torch.nn.init.dirac_``), so a block starts close to passing its input through."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        rows, cols, inputs, outputs = shape
        identity = np.zeros(shape, dtype=np.float32)
        k = min(inputs, outputs)
        identity[rows // 2, cols // 2, np.arange(k), np.arange(k)] = 1.0
        first = np.arange(outputs) < k
        return keras.ops.where(first, keras.ops.convert_to_tensor(identity, dtype=dtype),
                               torch_uniform(self.seed)(shape, dtype))

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_apml")
class ScaledBias(layers.Layer):
    """A per-channel bias stored divided by ``scale``: under SGD it learns ``scale**2`` times as fast as the
    model's other weights, its weight decay unchanged (airbench's ``bias_scaler``: 64 for BatchNorm biases)."""

    def __init__(self, scale=8.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(int(input_shape[-1]),), initializer="zeros", name="bias")

    def call(self, x):
        return x + keras.ops.cast(self.scale * self.bias, x.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_apml")
class VGG19Preprocess(layers.Layer):
    """Map [0, 1] RGB pixels to VGG19's input with ``keras.applications.vgg19.preprocess_input``."""

    def call(self, images):
        return keras.applications.vgg19.preprocess_input(images * 255.0)


@keras.saving.register_keras_serializable(package="keras_apml")
class TwoStageProbabilities(layers.Layer):
    """Combine p(first | x) from a one-vs-rest stage with p(class | not first, x) from a second stage."""

    def call(self, first, rest):
        return keras.ops.concatenate([first[:, :1], first[:, 1:2] * rest], axis=-1)


@keras.saving.register_keras_serializable(package="keras_apml")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Keras's categorical cross-entropy with ``label_smoothing``, for integer labels (Keras's sparse loss has no
    smoothing): the labels are one-hot encoded, then ``keras.losses.categorical_crossentropy`` scores them."""

    def __init__(self, label_smoothing=0.0, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="keras_apml")
class Triangle(keras.optimizers.schedules.LearningRateSchedule):
    """airbench's learning-rate schedule (Keras has no piecewise-linear one): linear from ``start`` times the rate
    at step 0 up to the rate at step ``int(peak_at * total_steps)``, then linear down to ``end`` times it at
    ``total_steps``."""

    def __init__(self, learning_rate, total_steps, start=0.2, peak_at=0.23, end=0.07):
        self.learning_rate, self.total_steps = float(learning_rate), int(total_steps)
        self.start, self.peak_at, self.end = float(start), float(peak_at), float(end)

    def __call__(self, step):
        peak = int(self.peak_at * self.total_steps)
        x = keras.ops.cast(step, "float32")
        up = self.start + (1.0 - self.start) * x / max(peak, 1)
        down = 1.0 + (self.end - 1.0) * (x - peak) / max(self.total_steps - peak, 1)
        return self.learning_rate * keras.ops.where(x < peak, up, down)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps, "start": self.start,
                "peak_at": self.peak_at, "end": self.end}


@keras.saving.register_keras_serializable(package="keras_apml")
class ApplicationPreprocess(layers.Layer):
    """Map [0, 1] RGB pixels to a ``keras.applications`` model's input with its family's own ``preprocess_input``
    (``family``: the module, e.g. "resnet_v2"; a pass-through for the families whose models preprocess inside)."""

    def __init__(self, family, **kwargs):
        super().__init__(**kwargs)
        self.family = str(family)
        self._preprocess = getattr(keras.applications, self.family).preprocess_input

    def call(self, images):
        return self._preprocess(images * 255.0)

    def get_config(self):
        return {**super().get_config(), "family": self.family}
