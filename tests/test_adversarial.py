"""FGSM, PGD and the optimisation attack on toy models, and the adversarial command."""

import json

import keras
import numpy as np
import pytest
from conftest import run_command

from keras_apml import adversarial, evaluation
from keras_apml.errors import InputError

SHAPE = (4, 4, 1)


def linear_softmax(seed=0):
    """Flatten -> Dense(3, softmax) with random weights: its input gradient has a closed form."""
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=(16, 3)).astype("float32"), rng.normal(size=3).astype("float32")])
    return model


@pytest.fixture(scope="module")
def toy():
    """A linear softmax model trained on three separable classes of 4x4 images, and some of its images."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 60)
    x = np.clip(0.5 + 0.25 * (y[:, None] - 1) * np.linspace(-1, 1, 16) + rng.normal(0, 0.05, (180, 16)), 0, 1)
    x = x.reshape(-1, *SHAPE).astype("float32")
    keras.utils.set_random_seed(0)
    model = linear_softmax()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    return model, x, y


def test_fgsm_equals_the_closed_form_on_a_linear_softmax_model():
    model = linear_softmax()
    rng = np.random.default_rng(1)
    x = rng.uniform(0.2, 0.8, (8, *SHAPE)).astype("float32")
    y = rng.integers(0, 3, 8)
    w, b = model.get_weights()
    logits = x.reshape(8, -1) @ w + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    gradient = (p - np.eye(3)[y]) @ w.T  # d cross-entropy / dx
    expected = np.clip(x + 0.1 * np.sign(gradient).reshape(x.shape), 0, 1)
    x_adv, delta = adversarial.fgsm(model, x, y, 0.1)
    np.testing.assert_allclose(x_adv, expected, atol=1e-6)
    np.testing.assert_allclose(delta, expected - x, atol=1e-6)
    targeted_adv, _ = adversarial.fgsm(model, x, y, 0.1, targeted=True)
    np.testing.assert_allclose(targeted_adv, np.clip(x - 0.1 * np.sign(gradient).reshape(x.shape), 0, 1), atol=1e-6)


@pytest.mark.parametrize("attack", [adversarial.fgsm, adversarial.pgd])
def test_outputs_stay_in_the_pixel_range_and_the_eps_ball(toy, attack):
    model, x, y = toy
    unchanged, delta = attack(model, x, y, 0.0)
    np.testing.assert_array_equal(unchanged, x)
    assert not delta.any()
    for eps in (0.01, 0.1, 0.3):
        x_adv, delta = attack(model, x, y, eps)
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        assert np.abs(x_adv - x).max() <= eps + 1e-6
        np.testing.assert_allclose(delta, x_adv - x)


def test_pgd_is_at_least_as_strong_as_fgsm(toy):
    model, x, y = toy
    fgsm_accuracy = np.mean(evaluation.predict_labels(model, adversarial.fgsm(model, x, y, 0.1)[0]) == y)
    pgd_accuracy = np.mean(evaluation.predict_labels(model, adversarial.pgd(model, x, y, 0.1, steps=20)[0]) == y)
    assert pgd_accuracy <= fgsm_accuracy < np.mean(evaluation.predict_labels(model, x) == y)


def test_a_targeted_step_raises_the_target_probability(toy):
    model, x, y = toy
    target = (y + 1) % 3
    before = model.predict(x, verbose=0)[np.arange(len(y)), target]
    x_adv, _ = adversarial.fgsm(model, x, target, 0.02, targeted=True)
    after = model.predict(x_adv, verbose=0)[np.arange(len(y)), target]
    assert np.all(after > before)


def test_the_optimisation_attack_reaches_the_target_and_l1_falls_as_c_grows(toy):
    model, x, y = toy
    pick = np.arange(0, 180, 12)
    target = (y[pick] + 1) % 3
    loose = adversarial.optimize_attack(model, x[pick], target, c=0.0, learning_rate=0.02, max_steps=300)
    assert loose.info["success"].all()
    assert (evaluation.predict_labels(model, loose[0]) == target).all()
    assert (loose.info["steps"] >= 1).all() and loose.info["steps"].max() <= 300
    tight = adversarial.optimize_attack(model, x[pick], target, c=0.05, learning_rate=0.02, max_steps=300)
    assert tight.info["l1"].mean() < loose.info["l1"].mean()
    flat = loose[1].reshape(len(pick), -1)
    np.testing.assert_allclose(loose.info["l1"], np.abs(flat).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(loose.info["linf"], np.abs(flat).max(axis=1), rtol=1e-5)


def test_attacks_leave_the_weights_untouched(toy):
    model, x, y = toy
    before = [w.copy() for w in model.get_weights()]
    adversarial.fgsm(model, x, y, 0.1)
    adversarial.pgd(model, x, y, 0.1, steps=3)
    adversarial.optimize_attack(model, x[:5], (y[:5] + 1) % 3, max_steps=5)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_bad_inputs_are_refused(toy):
    model, x, y = toy
    with pytest.raises(InputError, match="not uint8"):
        adversarial.fgsm(model, (x * 255).astype(np.uint8), y, 0.1)
    with pytest.raises(InputError, match="must lie in"):
        adversarial.fgsm(model, x * 2, y, 0.1)
    with pytest.raises(InputError, match="180 images but 3 labels"):
        adversarial.pgd(model, x, y[:3], 0.1)


@pytest.mark.slow
@pytest.mark.xdist_group("adversarial")  # shares the quick run with test_experiments on one worker
def test_the_command_records_accuracy_per_eps_and_success_per_target(quick_run):
    status, out = quick_run("adversarial")
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())["runs"]
    assert set(metrics["sweep"]) == {"fgsm", "pgd"}
    assert list(metrics["sweep"]["fgsm"]) == ["0", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.3"]
    assert set(metrics["targeted"]["per_target"]) == {"car", "truck", "cat"}
    for name in ("eps_sweep.png", "eps_grid.png", "examples.png"):
        assert (out / name).is_file()


@pytest.mark.slow
def test_no_model_anywhere_is_one_error_naming_the_commands(image_tree, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = run_command("adversarial", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--quick"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "experiments.imbalance" in err[0]
