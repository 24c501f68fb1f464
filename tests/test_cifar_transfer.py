"""experiments.cifar_transfer: cached VGG19 features, fine-tuning, distribution, its flags."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import run_command


def quick(root, out, *extra):
    """A --quick command line; VGG19 untrained (ImageNet weights are unreachable here) where the vgg19 run is in."""
    runs = extra[extra.index("--runs") + 1] if "--runs" in extra else "vgg19"
    weights = ["--weights", "none"] if "vgg19" in runs else []
    return ["--data-dir", str(root), "--out", str(out), "--quick", "--quiet", *weights, *extra]


@pytest.mark.slow
def test_end_to_end_and_fine_tuning_runs(image_tree, tmp_path):
    root, _ = image_tree
    out = tmp_path / "run"
    assert run_command("cifar_transfer", quick(root, out, "--runs", "vgg19", "--no-feature-cache", "--fine-tune")) == 0
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert runs["vgg19"]["feature_cache"] is False and "feature_seconds" not in runs["vgg19"]["timing"]
    assert runs["vgg19_finetune"]["unfrozen"] == "block4"
    tuned = keras.models.load_model(out / "vgg19_finetune.keras")
    block4 = 1180160 + 3 * 2359808
    assert sum(int(np.prod(w.shape)) for w in tuned.trainable_weights) == 2631178 + block4
    assert "## Comparison" in (out / "report.md").read_text().split("vgg19_finetune")[-2]


@pytest.mark.slow
def test_conv_runs_record_the_study_numbers_beside_theirs_and_gpu_options_stay_off_on_a_cpu(
        image_tree, tmp_path, capsys):
    root, _ = image_tree
    out = tmp_path / "run"
    argv = quick(root, out, "--runs", "1", "--mixed-precision", "--jit")
    assert run_command("cifar_transfer", argv) == 0
    assert "note: --mixed-precision needs a GPU" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["gpu"] == {"mixed_precision": False, "jit": False}
    assert keras.mixed_precision.global_policy().name == "float32"
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["runs"]) == ["1_raw"]
    assert metrics["runs"]["1_raw"]["test"]["n"] == 200 and metrics["runs"]["1_raw"]["validation"]["n"] == 100
    table = (out / "report.md").read_text().split("## Comparison")[1]
    assert "| 1_raw |" in table and "70.81%" in table and "73.26%" not in table
    assert keras.models.load_model(out / "1_raw.keras").count_params() == 72922
    stamp = (out / "1_raw.keras").stat().st_mtime_ns
    assert run_command("cifar_transfer", argv) == 0  # the same --out again
    assert (out / "1_raw.keras").stat().st_mtime_ns == stamp  # kept, not trained again
    assert json.loads((out / "metrics.json").read_text()) == metrics


@pytest.mark.slow
def test_the_conv_net_and_the_head_on_cached_features_take_their_own_dropout_and_batch_size(image_tree, tmp_path,
                                                                                            monkeypatch):
    from experiments.cifar_transfer import load_data, parse_args
    from keras_apml import features, models, trainer

    batches = {}
    fit = trainer.fit_dataset

    def counting_fit(model, train_data, **kwargs):
        batches[model.name] = int(train_data.cardinality())
        return fit(model, train_data, **kwargs)

    monkeypatch.setattr(trainer, "fit_dataset", counting_fit)
    root, _ = image_tree
    out = tmp_path / "run"
    argv = quick(root, out, "--runs", "3,vgg19", "--dropout", "0.1", "--head-batch-size", "100")
    assert run_command("cifar_transfer", argv) == 0
    assert batches == {"cifar_convnet": 7, "transfer_head": 4}  # 400 training images in 64s, then in 100s
    model = keras.models.load_model(out / "3_augmented.keras")
    assert model.get_layer("dropout1").rate == model.get_layer("dropout2").rate == 0.1
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert runs["3_augmented"]["recipe"]["dropout"] == 0.1 and "width_shift_range=0.125" in runs["3_augmented"][
        "recipe"]["augment"]
    assert "interpolation_order=0" in runs["3_augmented"]["recipe"]["augment"]  # whole-pixel shifts

    # the head trained on the frozen base's cached outputs predicts as the full model saved
    vgg19 = runs["vgg19"]
    assert vgg19["feature_cache"] is True and vgg19["timing"]["feature_cache"] == "miss"
    model = keras.models.load_model(out / "vgg19.keras")
    data = load_data(parse_args(argv))
    base = models.transfer_features(model)
    cached, info = features.cached_outputs(base, {name: split.x for name, split in data.splits.items()},
                                           key=f"{features.weights_sha256(base)}:32", about="test")
    assert info["cache"] == "hit"  # the experiment's own cache, found again from the saved model's weights
    x_test = data["test"].x.astype(np.float32) / 255.0
    np.testing.assert_allclose(models.transfer_head(model).predict(cached["test"], verbose=0),
                               model.predict(x_test, verbose=0), atol=1e-5)
    assert vgg19["test"]["accuracy"] == np.mean(model.predict(x_test, verbose=0).argmax(1) == data["test"].y)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(image_tree, tmp_path):
    root, _ = image_tree
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from experiments import cifar_transfer
        cifar_transfer.main({quick(root, tmp_path / "run", "--runs", "2", "--distribute", "mirrored")!r})
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["replicas"] == 2 and config["arguments"]["distribute"] == "mirrored"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["runs"]["2_standardized"]["test"]["n"] == 200
    standardized = keras.models.load_model(tmp_path / "run" / "2_standardized.keras")
    assert standardized.count_params() == 72922 + 7  # Normalization's mean, variance and count


def test_the_shared_recipe_flags_change_the_conv_net_runs_and_size_airbench(tmp_path):
    from experiments.cifar_transfer import parse_args, recipes
    from keras_apml.errors import InputError
    from keras_apml.recipe import AIRBENCH, CIFAR_AUGMENT, CIFAR_CONVNET_FAST, VGG19_HEAD

    argv = ["--runs", "1,2,3,vgg19,airbench", "--recipe", "fast", "--optimizer", "sgd", "--momentum", "0.8",
            "--weight-decay", "1e-4", "--dropout", "0.1", "--epochs", "3", "--fine-tune", "--weights", "none"]
    planned = recipes(parse_args(argv))
    changed = {"optimizer": "sgd", "momentum": 0.8, "weight_decay": 1e-4, "dropout": 0.1, "epochs": 3}
    assert planned["2_standardized"] == CIFAR_CONVNET_FAST.replace(**changed)
    assert planned["1_raw"] == planned["2_standardized"].replace(standardize=False)
    assert planned["3_augmented"].augment == CIFAR_AUGMENT and planned["3_augmented"].optimizer == "sgd"
    assert planned["airbench"] == AIRBENCH.replace(epochs=3)  # sized by --epochs, its recipe otherwise its own
    assert planned["vgg19"] == VGG19_HEAD.replace(weights=None)  # the head has its own flags
    assert planned["vgg19_finetune"].batch_size == 64 and planned["vgg19_finetune"].lr == 1e-5
    with pytest.raises(InputError, match="--lr concerns the conv net runs, which --runs leaves out"):
        parse_args(["--runs", "airbench", "--lr", "0.1"])
    with pytest.raises(InputError, match="--momentum is SGD's: --optimizer adam has none"):
        recipes(parse_args(["--momentum", "0.5"]))
    # --whiten-bias-epochs is airbench's: with it or beside the conv nets, it changes airbench alone
    for runs in ("airbench", "1,airbench"):
        planned = recipes(parse_args(["--runs", runs, "--whiten-bias-epochs", "5"]))
        assert planned["airbench"] == AIRBENCH.replace(whiten_bias_epochs=5)
        assert all(r.whiten_bias_epochs is None for name, r in planned.items() if name != "airbench")
    with pytest.raises(InputError, match="--whiten-bias-epochs concerns the airbench run, which --runs leaves out"):
        parse_args(["--runs", "1", "--whiten-bias-epochs", "5"])


@pytest.mark.slow
def test_bad_flags_are_error_lines(image_tree, tmp_path, capsys):
    root, _ = image_tree
    assert run_command("cifar_transfer", quick(root, tmp_path / "a", "--runs", "1,4")) == 2
    assert capsys.readouterr().err.startswith(
        "error: argument --runs: unknown '4'; --runs takes comma-separated names from 1, 2, 3, vgg19")
    assert run_command("cifar_transfer", quick(root, tmp_path / "a", "--dropout", "1")) == 2
    assert capsys.readouterr().err.startswith("error: argument --dropout: expected a number < 1, got 1")
    assert run_command("cifar_transfer", quick(root, tmp_path / "b", "--distribute", "multiworker")) == 2
    assert capsys.readouterr().err.startswith("error: --distribute multiworker: Keras 3 cannot train under "
                                              "MultiWorkerMirroredStrategy yet")
    assert not (tmp_path / "b").exists()
    assert run_command("cifar_transfer", ["--data-dir", str(root), "--out", str(tmp_path / "c"), "--quick",
                                          "--weights", str(tmp_path / "missing.h5"), "--runs", "vgg19"]) == 2
    assert "missing.h5 does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_the_fast_recipe_and_airbench_on_every_training_image_report_tta_beside_the_plain_figure(image_tree, tmp_path):
    from experiments.cifar_transfer import load_data, parse_args
    from keras_apml import evaluation, models

    root, _ = image_tree
    out = tmp_path / "run"
    argv = quick(root, out, "--runs", "1,airbench", "--recipe", "fast", "--val-split", "0")
    assert run_command("cifar_transfer", argv) == 0
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    # --val-split 0: every training image trains (500 under --quick), each run keeps its last epoch, as airbench
    assert runs["airbench"]["train"]["n"] == 500 and "validation" not in runs["airbench"]
    assert runs["airbench"]["training"]["best_epoch"] is None
    assert sorted(runs["airbench"]["training"]["history"]) == ["accuracy", "loss"]  # no empty val_ columns
    assert "no validation (--val-split 0: each run keeps its last epoch)" in (out / "report.md").read_text()
    fast = runs["1_raw"]["recipe"]
    assert (fast["schedule"], fast["batch_size"], fast["label_smoothing"], fast["ema"]) == ("onecycle", 256, 0.1, 0.99)
    assert runs["airbench"]["recipe"]["optimizer"] == "nesterov" and runs["airbench"]["recipe"]["batch_size"] == 1024
    data = load_data(parse_args(argv))
    x_train, x, y = data["train"].x, data["test"].x, data["test"].y
    model = keras.models.load_model(out / "airbench.keras")
    # the whitening layer is fitted on the training images and never trained
    whitening = models.fit_whitening(x_train)
    np.testing.assert_array_equal(model.get_layer("whiten").kernel.numpy(), whitening.kernel.numpy())
    plain = evaluation.predict_proba(model, x)
    mirrored = model.predict(x[:, :, ::-1].astype(np.float32) / 255.0, batch_size=256, verbose=0)
    assert runs["airbench"]["test"]["accuracy"] == np.mean(plain.argmax(1) == y)
    flip = np.log(plain) + np.log(mirrored)  # airbench's flip TTA: the log-probabilities' mean, times 2
    assert runs["airbench"]["test_flip_tta"]["accuracy"] == np.mean(flip.argmax(1) == y)
    level2 = evaluation.predict_tta(model, x, 2)
    assert runs["airbench"]["test_tta_level2"]["accuracy"] == np.mean(level2.argmax(1) == y)
    table = (out / "report.md").read_text().split("## Comparison")[1]
    assert "| test acc, flip TTA | test acc, TTA level 2 |" in table and "| 1_raw |" in table
    assert "| airbench |" in table


def test_the_main_command_offline_is_one_line_naming_only_its_own_flags_before_the_data_is_read(
        tmp_path, monkeypatch, capsys):
    """The README's main command with no network: the VGG19 weights cannot be downloaded. One line that says where
    to put them and names only flags cifar_transfer has; said before the data is read (here there is none)."""
    from experiments import cifar_transfer

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no network")

    monkeypatch.setattr(keras.applications, "VGG19", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    out = tmp_path / "run"
    assert run_command("cifar_transfer", ["--data-dir", str(tmp_path / "no_data_here"), "--out", str(out),
                                          "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: could not download the VGG19 ImageNet weights")
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in err and str(tmp_path / "keras_home" / "models") in err
    assert "cannot take" not in err
    with pytest.raises(SystemExit):
        cifar_transfer.parse_args(["--help"])
    own = set(re.findall(r"--[a-z][a-z0-9-]*", capsys.readouterr().out))
    named = set(re.findall(r"--[a-z][a-z0-9-]*", err))
    assert named == {"--weights"} and named <= own
    assert not out.exists() and not (tmp_path / "keras_home").exists()


@pytest.mark.slow
def test_fine_tuning_interrupted_resumes_from_the_head_kept(image_tree, tmp_path, monkeypatch, capsys):
    """A call stopped in fine-tuning: the next one keeps the head it trained and fine-tunes its saved model (the
    fine-tuning used to be skipped whenever the head was kept)."""
    from experiments import cifar_transfer

    argv = quick(image_tree[0], tmp_path / "run", "--runs", "vgg19", "--fine-tune")

    def stopped(self, model):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(cifar_transfer.Study, "fine_tune", stopped)
        assert run_command("cifar_transfer", argv) == 130
    assert list(json.loads((tmp_path / "run" / "metrics.json").read_text())["runs"]) == ["vgg19"]
    assert run_command("cifar_transfer", [a for a in argv if a != "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] vgg19 (head 1 epoch): recorded in an earlier call, kept" in out
    assert "[2/2] vgg19_finetune: epoch 1/1 (" in out
    runs = json.loads((tmp_path / "run" / "metrics.json").read_text())["runs"]
    assert list(runs) == ["vgg19", "vgg19_finetune"] and runs["vgg19_finetune"]["unfrozen"] == "block4"
