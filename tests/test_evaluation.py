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
