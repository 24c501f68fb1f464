import json

import numpy as np
import pytest
from conftest import synthetic_images

from keras_apml import evaluation, models

NAMES = ("car", "truck", "cat")
Y = np.array([0, 0, 0, 1, 1, 2])
PRED = np.array([0, 0, 1, 1, 0, 2])


def test_metrics_match_a_hand_computed_confusion_matrix():
    m = evaluation.evaluate(PRED, None, Y, NAMES)
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    np.testing.assert_allclose(m["confusion_matrix_normalized"], [[2 / 3, 1 / 3, 0], [0.5, 0.5, 0], [0, 0, 1]])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class_accuracy"] == pytest.approx({"car": 2 / 3, "truck": 0.5, "cat": 1.0})
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    # precision per class: car 2/3, truck 1/2, cat 1 -> F1 equals recall here
    assert m["macro_precision"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1) / 6)
    assert "car" in m["classification_report"] and m["classification_report_dict"]["cat"]["support"] == 1


def test_always_car_has_high_accuracy_and_one_third_balanced_accuracy():
    y = np.array([0] * 88 + [1] * 7 + [2] * 5)
    m = evaluation.evaluate(np.zeros(100, int), None, y, NAMES)
    assert m["accuracy"] == pytest.approx(0.88)
    assert m["balanced_accuracy"] == pytest.approx(1 / 3)
    assert m["per_class_accuracy"] == {"car": 1.0, "truck": 0.0, "cat": 0.0}
    assert m["macro_precision"] == pytest.approx(0.88 / 3)  # zero division counted as 0, silently


def test_an_absent_class_has_no_accuracy_rather_than_nan():
    m = evaluation.evaluate(np.array([0, 1, 1]), None, np.array([0, 1, 0]), NAMES)
    assert m["per_class_accuracy"]["cat"] is None
    assert m["balanced_accuracy"] == pytest.approx(0.75)  # mean over the classes present
    assert m["confusion_matrix_normalized"][2] == [0.0, 0.0, 0.0]
    json.dumps(m, allow_nan=False)


def test_true_labels_are_reported_beside_observed_ones():
    y_true = np.array([0, 0, 2, 1, 1, 2])  # one cat labelled car
    m = evaluation.evaluate(PRED, None, Y, NAMES, y_true=y_true)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["true_labels"]["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_a_model_probabilities_and_labels_give_the_same_metrics():
    x = synthetic_images(20, seed=0)
    model = models.small_cnn()
    y = np.arange(20) % 3
    probabilities = model.predict(x.astype(np.float32) / 255.0, verbose=0)
    from_model = evaluation.evaluate(model, x, y, NAMES)
    assert from_model == evaluation.evaluate(probabilities, None, y, NAMES)
    assert from_model == evaluation.evaluate(probabilities.argmax(1), None, y, NAMES)


@pytest.mark.parametrize("imbalanced", [True, False])
def test_validation_balanced_accuracy_is_sklearns_and_equals_accuracy_on_equal_classes(imbalanced):
    from conftest import synthetic_images
    from sklearn.metrics import balanced_accuracy_score

    from keras_apml import recipe, trainer

    y = np.array([0] * 40 + [1] * 12 + [2] * 12) if imbalanced else np.arange(48) % 3
    x = synthetic_images(len(y), seed=1, labels=y)
    small = recipe.Recipe(model="small_cnn", epochs=2, batch_size=16)
    model = trainer.build(small, x, 3, seed=0)
    result, _, _ = trainer.fit(model, x, y, small, seed=0, validation=(x, y))
    scored = balanced_accuracy_score(y, evaluation.predict_labels(model, x))
    assert result.history["val_balanced_accuracy"][-1] == pytest.approx(scored, abs=1e-6)  # Keras counts in float32
    assert result.best_epoch is None  # no BestEpoch: the last epoch's weights
    if not imbalanced:
        assert result.history["val_balanced_accuracy"] == result.history["val_accuracy"]


def _position_sensitive_model():
    """A softmax over 3 classes of a fixed linear map of every pixel: each view of an image gives other
    probabilities."""
    import keras

    inputs = keras.Input((6, 5, 3))
    dense = keras.layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(seed=1))
    return keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))


def test_tta_level_2_weighs_the_six_views_log_probabilities_as_airbench_weighs_its_logits():
    model = _position_sensitive_model()
    x = synthetic_images(4, seed=2)[:, :6, :5]
    images = x.astype(np.float32) / 255.0

    def log_p(view):
        return np.log(model.predict(view, verbose=0).astype(np.float64))

    def shifted(a, rows, columns):  # moved down by rows and right by columns, the border reflected
        padded = np.pad(a, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
        return padded[:, 1 - rows:7 - rows, 1 - columns:6 - columns]

    mirror = images[:, :, ::-1]
    level1 = 0.5 * log_p(images) + 0.5 * log_p(mirror)
    translated = [0.5 * log_p(shifted(images, r, r)) + 0.5 * log_p(shifted(images, r, r)[:, :, ::-1]) for r in (1, -1)]
    level2 = 0.5 * level1 + 0.5 * (translated[0] + translated[1]) / 2
    for level, expected in ((0, log_p(images)), (1, level1), (2, level2)):
        expected = np.exp(expected) / np.exp(expected).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(evaluation.predict_tta(model, x, level), expected, rtol=1e-5, atol=1e-7)
    assert shifted(images, 1, 1)[0, 1, 1, 0] == images[0, 0, 0, 0]  # a view moves the image, one pixel
    assert not np.allclose(evaluation.predict_tta(model, x, 2), evaluation.predict_tta(model, x, 1))
    with pytest.raises(ValueError, match="level 3: expected 0, 1 or 2"):
        evaluation.predict_tta(model, x, 3)
