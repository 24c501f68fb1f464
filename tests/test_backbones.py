"""keras.applications backbones as feature extractors (offline: weights=None)."""

import keras
import numpy as np
import pytest

from keras_apml import backbones
from keras_apml.errors import InputError

WIDTHS = {"EfficientNetV2B0": 1280, "ResNet50V2": 2048, "ConvNeXtTiny": 768, "MobileNetV3Small": 576, "VGG19": 512}


@pytest.mark.parametrize("name", backbones.NAMED)
def test_each_named_backbone_resizes_inside_and_pools_its_features(name):
    model = backbones.backbone(name, weights=None)
    assert model.input_shape == (None, 32, 32, 3)
    assert tuple(model.get_layer("resize").output.shape) == (None, 224, 224, 3)  # the size it was trained at
    assert model.output_shape == (None, WIDTHS[name])
    assert not model.get_layer(model.layers[-1].name).trainable


def test_the_backbones_own_preprocessing_runs_on_0_to_255_pixels():
    model = backbones.backbone("ResNet50V2", weights=None, image_size=32)
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    preprocess = keras.Model(model.input, model.get_layer("preprocess").output)
    expected = keras.applications.resnet_v2.preprocess_input(images * 255.0)  # [-1, 1]
    np.testing.assert_allclose(preprocess.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert model.predict(images, verbose=0).shape == (2, 2048)


def test_a_size_of_its_own_and_any_keras_applications_name():
    assert tuple(backbones.backbone("MobileNetV3Small", None, 64).get_layer("resize").output.shape) == \
        (None, 64, 64, 3)
    assert backbones.SIZES["EfficientNetB3"] == 300 and "DenseNet121" in backbones.names()


def test_an_unknown_name_a_missing_file_or_a_tiny_size_is_refused(tmp_path):
    with pytest.raises(InputError, match="unknown backbone 'ResNet51'"):
        backbones.backbone("ResNet51", weights=None)
    with pytest.raises(InputError, match="backbone weights file .*missing.h5 does not exist"):
        backbones.backbone("VGG19", weights=str(tmp_path / "missing.h5"))
    with pytest.raises(InputError, match="backbone input size 16"):
        backbones.backbone("VGG19", weights=None, image_size=16)
    (tmp_path / "bad.weights.h5").write_bytes(b"not weights")
    with pytest.raises(InputError, match="cannot load VGG19 weights from"):
        backbones.backbone("VGG19", weights=str(tmp_path / "bad.weights.h5"))


def test_imagenet_weights_out_of_reach_are_one_clear_error(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")  # what keras.utils.get_file raises offline

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(InputError, match="could not download the MobileNetV3Small ImageNet weights .* --weights PATH"):
        backbones.backbone("MobileNetV3Small")
