"""Imbalance strategies and the two-stage model, on small synthetic data."""

import keras
import numpy as np
import pytest
from conftest import TINY

from keras_apml import imbalance, models, pipeline, trainer
from keras_apml.augmentation import Augmentation
from keras_apml.errors import InputError
from keras_apml.recipe import Recipe


@pytest.mark.parametrize("balance, expected", [
    ("none", [120, 20, 10]), ("class_weight", [120, 20, 10]), ("under", [10, 10, 10]),
    ("random_over", [120, 120, 120]), ("smote", [120, 120, 120]), ("over+under", [50, 50, 50]),
])
def test_each_offline_strategy_fits_the_class_mix_it_promises(skewed, balance, expected):
    x, y = skewed
    _, steps, weights, fitted = pipeline.training_dataset(x, y, balance, batch_size=16, seed=0)
    assert np.bincount(fitted).tolist() == expected and steps is None
    if balance == "class_weight":
        assert weights == pytest.approx({0: 150 / 360, 1: 150 / 60, 2: 150 / 30})
    else:
        assert weights is None


def test_oversampling_in_tf_data_keeps_an_epoch_of_the_original_size(skewed):
    x, y = skewed
    ds, steps, weights, _ = pipeline.training_dataset(x, y, "oversample", batch_size=16, seed=0)
    assert steps == 10 and weights is None
    labels = np.concatenate([b[1].numpy() for b in ds.take(60)])
    assert np.abs(np.bincount(labels) / len(labels) - 1 / 3).max() < 0.05


def test_offline_augmentation_copies_every_class_but_the_largest(skewed):
    x, y = skewed
    spec = Augmentation.from_string(imbalance.AUGMENT, seed=0)
    x_aug, y_aug = imbalance.augment_minority(x, y, spec, copies=2)
    assert np.bincount(y_aug).tolist() == [120, 60, 30] and x_aug.shape == (210, 32, 32, 3)
    np.testing.assert_array_equal(x_aug[:120], x[:120])  # cars untouched
    assert not np.array_equal(x_aug[140:160], x[120:140])  # the first copy of the trucks is augmented


def test_the_flip_strategy_weights_the_loss_and_trains_on_images_or_their_mirror_images(skewed, monkeypatch):
    x, y = skewed
    seen, make = {}, pipeline.training_dataset

    def recorded(x_fit, y_fit, balance, batch_size, seed, augmentation, drop_remainder):
        seen["balance"] = balance
        seen["data"] = make(x_fit, y_fit, balance, batch_size, seed=seed, augmentation=augmentation,
                            drop_remainder=drop_remainder)
        return seen["data"]

    monkeypatch.setattr(pipeline, "training_dataset", recorded)
    trainer.train("flip+class_weight", x, y, TINY, seed=0)
    ds, _, weights, _ = seen["data"]
    assert seen["balance"] == "class_weight" and weights == pytest.approx({0: 150 / 360, 1: 150 / 60, 2: 150 / 30})
    images = np.round(np.concatenate([b[0].numpy() for b in ds]) * 255).astype(np.uint8)
    plain, mirrored = {i.tobytes() for i in x}, {i.tobytes() for i in x[:, :, ::-1]}
    kinds = [(i.tobytes() in plain, i.tobytes() in mirrored) for i in images]
    assert len(images) == 150 and all(p or m for p, m in kinds)  # no shifts, no rotations
    assert 30 < sum(m and not p for p, m in kinds) < 120  # about half mirrored


def test_every_strategy_of_a_seed_starts_from_the_same_weights(skewed):
    x, _ = skewed
    a = trainer.build(TINY, x, 3, seed=5).get_weights()
    b = trainer.build(TINY, x, 3, seed=5).get_weights()
    c = trainer.build(TINY, x, 3, seed=6).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_two_stage_probabilities_combine_both_stages(tmp_path):
    first, rest = models.small_cnn(num_classes=2), models.small_cnn(num_classes=2)
    joined = models.two_stage(first, rest)
    x = np.random.default_rng(0).random((5, 32, 32, 3)).astype("float32")
    p1, p2, p = first.predict(x, verbose=0), rest.predict(x, verbose=0), joined.predict(x, verbose=0)
    np.testing.assert_allclose(p, np.column_stack([p1[:, 0], p1[:, 1:2] * p2]), rtol=1e-5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    joined.save(tmp_path / "two_stage.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "two_stage.keras").predict(x, verbose=0), p,
                               rtol=1e-6)


def test_two_stage_training_returns_one_three_class_model(skewed, monkeypatch):
    x, y = skewed
    fitted, fit = [], trainer.fit

    def spy(model, x_fit, y_fit, recipe, **kwargs):
        fitted.append(np.bincount(y_fit).tolist())
        return fit(model, x_fit, y_fit, recipe, **kwargs)

    monkeypatch.setattr(trainer, "fit", spy)
    model, result, labels = trainer.train("two_stage", x, y, TINY, seed=0)
    # car (120) against the rest (30), then truck (20) against cat (10) on the rest only
    assert fitted == [[120, 30], [20, 10]] and np.array_equal(labels, y)
    assert result.epochs_run == 2 and len(result.history["loss"]) == len(result.history["stage2_loss"]) == 1
    first, rest = model.get_layer("first_stage"), model.get_layer("second_stage")
    p_first, p_rest = first.predict(x[:8], verbose=0), rest.predict(x[:8], verbose=0)
    np.testing.assert_allclose(model.predict(x[:8], verbose=0),
                               np.column_stack([p_first[:, 0], p_first[:, 1:2] * p_rest]), rtol=1e-5)


def test_unknown_strategies_and_models_are_refused():
    with pytest.raises(InputError, match="unknown strategy 'smote2'"):
        imbalance.strategy("smote2")
    with pytest.raises(InputError, match="unknown model 'resnet'"):
        Recipe(model="resnet")
    with pytest.raises(InputError, match="--init model missing.keras does not exist"):
        Recipe(init="missing.keras")


def test_an_init_model_gives_every_strategy_its_weights_but_the_classifier(skewed, tmp_path):
    x, y = skewed
    pretrained = models.small_cnn(num_classes=7, standardizer=models.fit_standardizer(x[:10]))
    pretrained.save(tmp_path / "pretrained.keras")
    recipe = TINY.replace(init=str(tmp_path / "pretrained.keras"))
    model = trainer.build(recipe, x, 3, seed=0)
    for name in ("standardize", "conv1", "fc2"):
        for theirs, ours in zip(pretrained.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(theirs, ours)
    scratch = trainer.build(TINY, x, 3, seed=0)
    np.testing.assert_array_equal(model.get_layer("predictions").get_weights()[0],
                                  scratch.get_layer("predictions").get_weights()[0])
