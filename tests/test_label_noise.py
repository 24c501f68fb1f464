"""Label-noise detection: cleanlab on out-of-fold probabilities, its quality against the truth, cleaning."""

import keras
import numpy as np
import pytest
from conftest import TINY
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from keras_apml import evaluation, label_noise, trainer
from keras_apml.errors import InputError

FIT_PREDICT = label_noise.strategy_fit_predict("class_weight", TINY)


@pytest.fixture(scope="module")
def planted():
    """Three Gaussian blobs a linear model separates, 30 of 300 labels flipped to the next class."""
    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(3), 100)
    centres = np.array([[0, 0], [6, 0], [0, 6]])
    x = centres[y_true] + rng.normal(size=(300, 2))
    y = y_true.copy()
    flipped = rng.choice(300, size=30, replace=False)
    y[flipped] = (y[flipped] + 1) % 3
    return x, y, y_true, flipped


def test_confident_learning_finds_planted_label_errors(planted):
    x, y, y_true, flipped = planted
    probabilities = cross_val_predict(LogisticRegression(), x, y, cv=5, method="predict_proba")
    flagged = label_noise.find_issues(y, probabilities)
    quality = label_noise.detection_quality(flagged, y, y_true)
    assert quality["wrong"] == 30
    assert quality["precision"] >= 0.9 and quality["recall"] >= 0.9
    assert quality["correctly_flagged"] == len(set(flagged) & set(flipped))


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["head", "both"])
def test_the_features_detectors_rank_planted_errors_first_and_flag_them(planted, detector):
    """What ``label_noise --features`` runs: out-of-fold probabilities of the softmax head (the FEATURE_HEAD recipe,
    class weights), alone or averaged fold by fold with a second model on a second view of the same images (here a
    scikit-learn logistic regression on the points rotated, standing in for the fine-tuned source), cleanlab's flags
    and self-confidence ranking."""
    from keras_apml.recipe import FEATURE_HEAD

    x, y, y_true, flipped = planted
    x = (x + np.array([[0, 0], [6, 0], [0, 6]])[y_true]).astype(np.float32)  # centres 12 apart: ranked exactly
    fit_predict = label_noise.strategy_fit_predict("class_weight", FEATURE_HEAD.replace(batch_size=16, epochs=100))
    if detector == "both":
        def logistic(x_fit, y_fit, x_held, seed):
            return LogisticRegression(class_weight="balanced").fit(x_fit, y_fit).predict_proba(x_held)

        fit_predict = label_noise.ensemble_fit_predict(fit_predict, logistic)
        x = label_noise.Views(x, x @ np.array([[0.6, -0.8], [0.8, 0.6]]))
    probabilities = label_noise.out_of_fold_probabilities(x, y, fit_predict, folds=3, seed=0)
    ranking = label_noise.ranking_quality(label_noise.label_quality(y, probabilities), y, y_true)
    assert ranking == {"roc_auc": 1.0, "average_precision": 1.0}
    flagged = label_noise.find_issues(y, probabilities)
    assert set(flagged) == set(flipped.tolist())


def test_an_ensemble_averages_its_members_fold_by_fold_each_on_its_own_view(planted):
    x, y, _, _ = planted
    other = np.hstack([x, x ** 2, x[:, :1]])  # a second view of the same points, five columns wide

    def logistic(x_fit, y_fit, x_held, seed):
        assert x_fit.shape[1] == x_held.shape[1] == 2
        return LogisticRegression().fit(x_fit, y_fit).predict_proba(x_held)

    def fold_prior(x_fit, y_fit, x_held, seed):  # the class shares of the fold trained on: tells the folds apart
        assert x_fit.shape[1] == x_held.shape[1] == 5
        return np.tile(np.bincount(y_fit, minlength=3) / len(y_fit) + seed / 1000, (len(x_held), 1))

    both = label_noise.out_of_fold_probabilities(label_noise.Views(x, other), y,
                                                 label_noise.ensemble_fit_predict(logistic, fold_prior), seed=3)
    alone = [label_noise.out_of_fold_probabilities(v, y, f, seed=3) for v, f in ((x, logistic), (other, fold_prior))]
    np.testing.assert_allclose(both, (alone[0] + alone[1]) / 2, rtol=1e-6)  # kept as float32
    views = label_noise.Views(x, other)[np.array([4, 2])]
    assert len(views) == 2 and np.array_equal(views.arrays[1], other[[4, 2]])
    with pytest.raises(InputError, match="views of the same images must have one length each, got \\[300, 2\\]"):
        label_noise.Views(x, other[:2])


def test_detection_quality_is_precision_and_recall_of_the_flagged_set():
    y_observed, y_true = np.array([0, 1, 1, 2, 0, 0]), np.array([0, 0, 2, 0, 0, 0])
    quality = label_noise.detection_quality([0, 1, 2], y_observed, y_true)  # wrong: 1, 2, 3
    assert quality == {"flagged": 3, "wrong": 3, "correctly_flagged": 2, "precision": pytest.approx(2 / 3),
                       "recall": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3)}


def test_the_ranking_quality_is_roc_auc_and_average_precision_of_the_label_quality_scores(planted):
    _, y, y_true, _ = planted
    # models sure of the truth give every planted error a lower score than every right label: a perfect ranking
    probabilities = np.full((len(y), 3), 0.05)
    probabilities[np.arange(len(y)), y_true] = 0.9
    scores = label_noise.label_quality(y, probabilities)
    np.testing.assert_allclose(scores, probabilities[np.arange(len(y)), y])  # self-confidence
    assert label_noise.ranking_quality(scores, y, y_true) == {"roc_auc": 1.0, "average_precision": 1.0}
    # a hand-checked ranking: wrong labels at positions 1 and 3 of four, scores ranked 0.1 < 0.2 < 0.3 < 0.4
    y_observed, truth = np.array([0, 1, 0, 1]), np.array([0, 0, 0, 0])
    ranked = label_noise.ranking_quality(np.array([0.1, 0.2, 0.3, 0.4]), y_observed, truth)
    # of the four (wrong, right) pairs only (position 1, position 2) ranks the wrong label first
    assert ranked == {"roc_auc": pytest.approx(1 / 4), "average_precision": pytest.approx((1 / 2 + 2 / 4) / 2)}
    assert label_noise.ranking_quality(np.array([0.1, 0.2]), np.array([0, 1]), np.array([0, 1])) == \
        {"roc_auc": None, "average_precision": None}  # no wrong label: nothing to rank


def test_flags_by_pair_count_each_kind_of_wrong_label_and_what_right_ones_were_taken_for():
    names = ["car", "truck", "cat"]
    y_observed = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    y_true = np.array([2, 2, 2, 0, 0, 1, 0, 2])  # cats called car (3), a car called truck (1)
    flagged, suggested = [0, 2, 3, 6, 7], [2, 2, 1, 0, 0]  # two of the cats, the car called truck; two right ones
    pairs = label_noise.flags_by_pair(flagged, y_observed, y_true, suggested, names)
    assert pairs == {"wrong": [{"observed": "car", "true": "cat", "wrong": 3, "flagged": 2},
                               {"observed": "truck", "true": "car", "wrong": 1, "flagged": 1}],
                     "right_flagged": [{"label": "car", "taken_for": "truck", "flagged": 1},
                                       {"label": "cat", "taken_for": "car", "flagged": 1}]}


def test_cleaning_removes_or_relabels_exactly_the_flagged_images():
    x, y = np.arange(6)[:, None], np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.eye(3)[[0, 2, 1, 0, 2, 2]]
    flagged = np.array([1, 3])
    x_removed, y_removed = label_noise.clean(x, y, flagged, probabilities, "removed")
    assert x_removed.ravel().tolist() == [0, 2, 4, 5] and y_removed.tolist() == [0, 1, 2, 2]
    _, y_relabelled = label_noise.clean(x, y, flagged, probabilities, "relabelled")
    assert y_relabelled.tolist() == [0, 2, 1, 0, 2, 2] and y.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(InputError, match="unknown cleaning"):
        label_noise.clean(x, y, flagged, probabilities, "fixed")


def test_out_of_fold_probabilities_cover_every_image_once(skewed):
    x, y = skewed
    seen = []
    probabilities = label_noise.out_of_fold_probabilities(x, y, FIT_PREDICT, folds=3,
                                                          on_fold=lambda i, k: seen.append(i))
    assert seen == [1, 2, 3] and probabilities.shape == (150, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(InputError, match="fewer than 20 folds"):
        label_noise.out_of_fold_probabilities(x, y, FIT_PREDICT, folds=20)
    with pytest.raises(InputError, match="repeats must be at least 1, got 0"):
        label_noise.out_of_fold_probabilities(x, y, FIT_PREDICT, folds=3, repeats=0)
    with pytest.raises(InputError, match="out-of-fold model 1: diverged at epoch 1: lower --lr"):
        label_noise.out_of_fold_probabilities(
            x, y, label_noise.strategy_fit_predict("class_weight", TINY.replace(lr=1e9)), folds=3)


def test_excluded_images_are_scored_but_never_trained_on(skewed, monkeypatch):
    x, y = skewed
    trained, train = [], trainer.train  # the images of every fold model's training set, as bytes

    def recorded_train(name, x_fit, y_fit, recipe, **kwargs):
        trained.append({image.tobytes() for image in x_fit})
        return train(name, x_fit, y_fit, recipe, **kwargs)

    monkeypatch.setattr(trainer, "train", recorded_train)
    excluded = np.array([0, 5, 120, 140, 149])  # cars, a truck, cats
    probabilities = label_noise.out_of_fold_probabilities(x, y, FIT_PREDICT, folds=3, exclude=excluded)
    assert probabilities.shape == (150, 3) and np.all(probabilities.sum(axis=1) > 0.99)
    assert sum(len(t) for t in trained) == 2 * 145  # the 145 images left, each in two of the three fits
    assert not any(x[i].tobytes() in t for i in excluded for t in trained)
    with pytest.raises(InputError, match="out-of-fold model 1 has no image of class 2 left to train on"):
        label_noise.out_of_fold_probabilities(x, y, FIT_PREDICT, folds=3, exclude=np.flatnonzero(y == 2))


def test_each_round_of_flagging_trains_without_the_round_befores_flags(monkeypatch):
    y = np.repeat(np.arange(3), 10)
    wrong = {1: [3, 12], 2: [3, 12, 25]}  # what each round's probabilities show as mislabelled
    calls = []

    def planted(x, y, fit_predict, folds, seed, on_fold, repeats, exclude, tasks):
        assert tasks == "the study's tasks"
        calls.append(np.asarray(exclude).tolist())
        for i in range(1, folds * repeats + 1):
            on_fold(i, folds * repeats)
        probabilities = np.full((len(y), 3), 0.05)
        probabilities[np.arange(len(y)), y] = 0.9
        shown = wrong[len(calls)]
        probabilities[shown] = 0.05
        probabilities[shown, (y[shown] + 1) % 3] = 0.9
        return probabilities

    monkeypatch.setattr(label_noise, "out_of_fold_probabilities", planted)
    seen = []
    probabilities, flags = label_noise.flag_in_rounds(None, y, FIT_PREDICT, rounds=2, folds=2,
                                                      on_fold=lambda i, k: seen.append((i, k)),
                                                      tasks="the study's tasks")
    assert calls == [[], [3, 12]]  # round 2 leaves out round 1's flags
    assert [sorted(f.tolist()) for f in flags] == [[3, 12], [3, 12, 25]]
    assert probabilities[25].argmax() == 0 and seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    calls.clear()
    _, flags = label_noise.flag_in_rounds(None, y, FIT_PREDICT, rounds=1, folds=2,  # no progress callback
                                          tasks="the study's tasks")
    assert calls == [[]] and [sorted(f.tolist()) for f in flags] == [[3, 12]]
    with pytest.raises(InputError, match="rounds must be at least 1, got 0"):
        label_noise.flag_in_rounds(None, y, FIT_PREDICT, rounds=0)


@pytest.mark.slow
def test_repeated_out_of_fold_probabilities_average_the_repeats(skewed):
    x, y = skewed
    seen = []
    first = label_noise.out_of_fold_probabilities(x, y, FIT_PREDICT, folds=2, seed=0)
    second = label_noise.out_of_fold_probabilities(x, y, FIT_PREDICT, folds=2, seed=2)  # repeat 2 of seed 0
    both = label_noise.out_of_fold_probabilities(x, y, FIT_PREDICT, folds=2, seed=0, repeats=2,
                                                 on_fold=lambda i, k: seen.append((i, k)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    np.testing.assert_allclose(both, (first + second) / 2, atol=1e-6)
    assert np.abs(first - second).max() > 1e-2  # other splits and models: the repeats differ


def test_mirrored_probabilities_average_each_image_and_its_mirror_image():
    # Softmax of (left-half mean, right-half mean) brightness: mirroring swaps the two classes' logits.
    inputs = keras.Input((32, 32, 3))
    halves = keras.layers.Lambda(lambda images: keras.ops.stack(
        [keras.ops.mean(images[:, :, :16], axis=(1, 2, 3)), keras.ops.mean(images[:, :, 16:], axis=(1, 2, 3))],
        axis=1))(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(halves * 10.0))
    x = np.zeros((3, 32, 32, 3), dtype=np.uint8)
    x[0, :, :16], x[1, :, 16:], x[2] = 255, 255, 128  # bright left, bright right, even
    plain = evaluation.predict_proba(model, x)
    assert plain.argmax(axis=1).tolist() == [0, 1, 0] and plain[0, 0] > 0.99
    np.testing.assert_allclose(evaluation.predict_proba(model, x, mirror=True), 0.5, atol=1e-6)
    np.testing.assert_allclose(evaluation.predict_proba(model, x[:, :, ::-1]), plain[[1, 0, 2]], atol=1e-6)


def test_flagging_never_forks_a_process_pool(planted, monkeypatch):
    """cleanlab's default forks a multiprocessing pool; forked beside TensorFlow's threads it can deadlock."""
    import multiprocessing

    def no_pool(*args, **kwargs):
        raise AssertionError("find_issues started a process pool")

    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    monkeypatch.setattr(multiprocessing.pool, "Pool", no_pool)
    x, y, _, _ = planted
    probabilities = cross_val_predict(LogisticRegression(), x, y, cv=5, method="predict_proba")
    assert len(label_noise.find_issues(y, probabilities)) > 0
