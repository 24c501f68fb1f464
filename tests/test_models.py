import keras
import numpy as np
import pytest
from conftest import synthetic_images

from keras_apml import custom_objects, models
from keras_apml.errors import InputError


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_small_cnn_has_the_course_parameter_count():
    model = models.small_cnn(num_classes=3)
    assert model.count_params() == 61411
    assert model.output_shape == (None, 3)


def test_cifar_convnet_has_exactly_72922_parameters():
    model = models.cifar_convnet()
    assert model.count_params() == 72922
    assert count(model.trainable_weights) == 72826
    assert models.cifar_convnet(l2=1e-4).count_params() == 72922


@pytest.fixture(scope="module")
def transfer_model():
    return models.vgg19_transfer(weights=None)


def test_vgg19_transfer_has_the_study_parameter_counts(transfer_model):
    assert transfer_model.count_params() == 13219402
    assert count(transfer_model.trainable_weights) == 2631178
    assert count(transfer_model.non_trainable_weights) == 10588224
    assert transfer_model.get_layer("vgg19_block4").output.shape[1:] == (2, 2, 512)


def test_transfer_head_shares_weights_with_the_full_model(transfer_model):
    x = synthetic_images(8, seed=1).astype(np.float32) / 255.0
    base = models.transfer_features(transfer_model)
    assert base.output_shape == (None, 2, 2, 512) and count(base.trainable_weights) == 0
    head = models.transfer_head(transfer_model)
    assert count(head.trainable_weights) == 2631178
    np.testing.assert_allclose(head.predict(base.predict(x, verbose=0), verbose=0),
                               transfer_model.predict(x, verbose=0), atol=1e-5)


def test_vgg19_preprocessing_is_inside_the_model():
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    expected = keras.applications.vgg19.preprocess_input(x * 255.0)
    np.testing.assert_allclose(custom_objects.VGG19Preprocess()(x), expected, rtol=1e-5)


def test_imagenet_weights_offline_give_one_clear_message(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no network")

    monkeypatch.setattr(keras.applications, "VGG19", offline)
    with pytest.raises(InputError, match="could not download the VGG19 ImageNet weights.*--weights PATH"):
        models.vgg19_transfer(weights="imagenet")
    with pytest.raises(InputError, match="does not exist"):
        models.vgg19_transfer(weights="/nonexistent/vgg19.h5")


def test_standardizer_is_fitted_on_the_given_training_images_only():
    train = synthetic_images(50, seed=0)
    test = np.full((50, 32, 32, 3), 255, np.uint8)
    norm = models.fit_standardizer(train)
    mean = keras.ops.convert_to_numpy(norm.mean).ravel()
    np.testing.assert_allclose(mean, (train / 255.0).mean(axis=(0, 1, 2)), rtol=1e-5)
    out = keras.ops.convert_to_numpy(norm(train.astype(np.float32) / 255.0))
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    assert not np.allclose(mean, (np.concatenate([train, test]) / 255.0).mean(axis=(0, 1, 2)), atol=0.01)


def test_saved_models_are_self_contained(tmp_path):
    x = synthetic_images(4, seed=2)
    model = models.cifar_convnet(standardizer=models.fit_standardizer(x))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    xf = x.astype(np.float32) / 255.0
    np.testing.assert_allclose(loaded.predict(xf, verbose=0), model.predict(xf, verbose=0), atol=1e-6)
    assert loaded.get_layer("standardize") is not None


def test_feature_extractor_stops_at_the_penultimate_layer(transfer_model):
    assert models.feature_extractor(models.small_cnn()).output.shape == (None, 84)
    assert models.feature_extractor(models.cifar_convnet()).output.shape == (None, 64)
    features = models.feature_extractor(transfer_model)
    assert features.layers[-1].name == "bn2" and features.output.shape == (None, 512)
    assert models.feature_extractor(transfer_model, layer="fc1").output.shape == (None, 1024)
    with pytest.raises(InputError, match="has no layer 'fc9'"):
        models.feature_extractor(transfer_model, layer="fc9")


def test_copy_weights_takes_every_layer_but_a_classifier_of_another_size():
    standardizer = models.fit_standardizer(synthetic_images(20, seed=3))
    source = models.cifar_convnet(num_classes=7, standardizer=standardizer)
    target = models.cifar_convnet(num_classes=3, standardizer=models.fit_standardizer(synthetic_images(20)))
    before = target.get_layer("predictions").get_weights()
    copied = models.copy_weights(source, target)
    assert copied == ["standardize", "conv1", "conv2", "bn1", "conv3", "conv4", "bn2", "conv5", "conv6"]
    for name in copied:
        for theirs, ours in zip(source.get_layer(name).get_weights(), target.get_layer(name).get_weights()):
            np.testing.assert_array_equal(theirs, ours)
    for kept, now in zip(before, target.get_layer("predictions").get_weights()):
        np.testing.assert_array_equal(kept, now)


@pytest.mark.parametrize("source, target_standardized, message", [
    (lambda: models.small_cnn(num_classes=3), True, "models small_cnn and cifar_convnet differ in standardize, conv1, "
                                                    "conv2, bn1, conv3, conv4, bn2, conv5, conv6, fc1, fc2 "),
    (lambda: models.cifar_convnet(num_classes=3), True,
     "models cifar_convnet and cifar_convnet differ in standardize "),
    (lambda: models.cifar_convnet(num_classes=3, standardizer=models.fit_standardizer(synthetic_images(20))), False,
     "models cifar_convnet and cifar_convnet differ in standardize "),
])
def test_copy_weights_refuses_another_architecture(source, target_standardized, message):
    standardizer = models.fit_standardizer(synthetic_images(20)) if target_standardized else None
    target = models.cifar_convnet(num_classes=3, standardizer=standardizer)
    with pytest.raises(InputError, match=message):
        models.copy_weights(source(), target)


def correlated_images(n=300, seed=0):
    """Smooth, colour-correlated images in [0, 1]: patches far from white."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, 13, 13, 3)).astype(np.float32)
    smooth = (base[:, 1:, 1:] + base[:, :-1, :-1]) / 2  # neighbouring pixels correlate
    return smooth @ np.array([[1.0, 0.8, 0.6], [0.0, 0.5, 0.3], [0.0, 0.0, 0.2]], np.float32) / 2


@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_patch_whitening_gives_its_patches_zero_mean_and_identity_covariance(epsilon):
    images = correlated_images()
    layer = custom_objects.PatchWhitening(epsilon=epsilon)
    layer.adapt(images)
    out = np.asarray(layer(images)).reshape(-1, 24).astype(np.float64)
    assert out.shape == (300 * 11 * 11, 24)
    patches = layer.patches(images).astype(np.float64)
    eigenvalues = np.linalg.eigvalsh(np.cov(patches.T, bias=True))
    shrink = np.diag(eigenvalues / (eigenvalues + epsilon * eigenvalues.mean()))  # 1 without epsilon
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(np.cov(out.T, bias=True), np.block([[shrink, -shrink], [-shrink, shrink]]), atol=2e-3)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2


def test_airbench_is_airbenchs_net_with_its_whitening_fitted_on_the_training_images():
    x = synthetic_images(64, seed=1)
    whitening = models.fit_whitening(x)
    model = models.airbench(whitening=whitening)
    assert model.count_params() == 1973954 and count(model.non_trainable_weights) == 312 + 2 * (2 * 64 + 4 * 256)
    kernel = model.get_layer("whiten").kernel.numpy()
    assert kernel.shape == (2, 2, 3, 24)
    assert not np.allclose(kernel, models.fit_whitening(synthetic_images(64, seed=2)).kernel.numpy())
    assert models.feature_extractor(model).output_shape == (None, 256)  # the pooled features, not over 9


def test_vgg19_can_upsample_inside_the_model():
    import tensorflow as tf

    model = models.vgg19_transfer(weights=None, upsample=64)
    assert model.input_shape == (None, 32, 32, 3)
    base = models.transfer_features(model)
    assert base.output_shape == (None, 4, 4, 512)  # block4_pool of 64x64 inputs
    x = synthetic_images(4).astype(np.float32) / 255.0
    resized = tf.image.resize(x, (64, 64), method="bilinear")
    expected = model.get_layer("vgg19_block4")(custom_objects.VGG19Preprocess()(resized))
    np.testing.assert_allclose(base.predict(x, verbose=0), np.asarray(expected), rtol=1e-4, atol=1e-3)


def test_airbench_convolutions_start_with_identity_filters():
    keras.utils.set_random_seed(0)
    w = np.asarray(custom_objects.PartialIdentity()((3, 3, 4, 6)))
    assert np.array_equal(w[:, :, :, :4], np.eye(4)[None, None] * np.array([0, 1, 0])[:, None, None, None]
                          * np.array([0, 1, 0])[None, :, None, None])  # centre tap, input i to output i
    assert np.abs(w[:, :, :, 4:]).max() <= 1 / np.sqrt(3 * 3 * 4) and np.abs(w[:, :, :, 4:]).min() > 0


def test_scaled_bias_learns_scale_squared_times_as_fast_under_sgd():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, custom_objects.ScaledBias(8.0)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mean_absolute_error")
    model.train_on_batch(np.zeros((4, 3), np.float32), np.full((4, 3), 10.0, np.float32))
    # d loss / d output bias = -4 / 12 per channel; the stored bias moves 0.01 * 8 / 3, the output 8 times that
    np.testing.assert_allclose(model.predict(np.zeros((1, 3), np.float32), verbose=0), [[0.64 / 3] * 3], rtol=1e-6)
    twin = custom_objects.ScaledBias.from_config(model.layers[-1].get_config())
    assert twin.scale == 8.0


def test_pooled_features_are_each_depths_channel_means_and_maxima_by_hand():
    inputs = keras.Input((4, 4, 2))
    conv = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(conv)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(pooled))
    x = np.random.default_rng(0).random((2, 4, 4, 2)).astype(np.float32)
    kernel, bias = (w.numpy() for w in model.get_layer("conv").weights)
    by_hand = x @ kernel[0, 0] + bias  # a 1x1 convolution: each pixel's channels times the kernel
    expected = np.concatenate([by_hand.mean(axis=(1, 2)), by_hand.max(axis=(1, 2)), by_hand.mean(axis=(1, 2))], 1)
    features = models.pooled_features(model, ["conv", "pool"]).predict(x, verbose=0)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="has no layer 'nope'; layers: "):
        models.pooled_features(model, ["conv", "nope"])
