"""A study's trainings on a Dask cluster (keras_apml.cluster): the results of a run in turn, failures in one line."""

import json

import numpy as np
import pytest
from conftest import run_command, synthetic_images

from keras_apml import cluster, label_noise, trainer
from keras_apml.errors import InputError
from keras_apml.recipe import Recipe

TINY = Recipe(model="small_cnn", epochs=1, batch_size=16)
ON_THE_CLUSTER = ("under", "two_stage")  # a resampled training set; two models joined into one


@pytest.fixture(scope="module")
def two_workers():
    """A local cluster of two worker processes (their TensorFlow imported once), shared by the tests of
    ``xdist_group("imbalance")``, which run on one pytest-xdist worker."""
    with cluster.Tasks(local_workers=2) as tasks:
        yield tasks.start()


@pytest.mark.slow
@pytest.mark.xdist_group("imbalance")  # with the quick imbalance run it compares with, and the cluster's other test
def test_a_quick_imbalance_study_on_a_cluster_of_two_workers_gives_the_table_of_a_run_in_turn(
        quick_run, image_tree, tmp_path, two_workers):
    status, in_turn = quick_run("imbalance")
    assert status == 0
    out = tmp_path / "run"
    argv = ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(out), "--quick", "--quiet",
            "--strategies", ",".join(ON_THE_CLUSTER), "--scheduler", two_workers.cluster.scheduler_address]
    assert run_command("imbalance", argv) == 0
    expected = json.loads((in_turn / "metrics.json").read_text())["runs"]
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert list(runs) == list(ON_THE_CLUSTER)
    for name in ON_THE_CLUSTER:
        assert runs[name]["summary"] == expected[name]["summary"], name
        trained, reference = runs[name]["seeds"]["0"], expected[name]["seeds"]["0"]
        assert trained["dev"] == reference["dev"], name
        assert trained["training"]["history"] == reference["training"]["history"], name
        assert trained["fitted_class_counts"] == reference["fitted_class_counts"], name
    assert (out / "best.keras").is_file() and (out / "report.md").is_file()


@pytest.mark.slow
def test_a_task_that_fails_twice_ends_the_study_with_one_error_line_naming_it(image_tree, tmp_path, monkeypatch,
                                                                              capsys):
    tries, real = tmp_path / "tries.txt", trainer.train_and_score

    def out_of_memory_under(name, seed, *args, **kwargs):  # defined here: pickled by value for the worker
        if name == "under":
            with open(tries, "a") as f:
                f.write("tried\n")
            raise MemoryError("the worker ran out of memory")
        return real(name, seed, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_and_score", out_of_memory_under)
    out = tmp_path / "run"
    status = run_command("imbalance", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(out),
                                       "--quick", "--quiet",
                                       "--strategies", "under", "--local-workers", "1"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: under seed 0: failed twice on the cluster: MemoryError: the worker ran out of memory"]
    assert tries.read_text() == "tried\n" * 2  # retried once, then reported
    assert not (out / "best.keras").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("imbalance")  # on the imbalance study's cluster
def test_fold_models_on_a_cluster_give_the_out_of_fold_probabilities_of_a_run_in_turn(two_workers):
    """Twice on one cluster, the same images shared again: the second call's tasks still find them."""
    y = np.repeat(np.arange(3), (40, 12, 8))
    x = synthetic_images(len(y), seed=3, labels=y)
    fit_predict = label_noise.strategy_fit_predict("class_weight", TINY)  # a closure: pickled by value
    seen = []
    expected = label_noise.out_of_fold_probabilities(x, y, fit_predict, folds=2)
    probabilities = label_noise.out_of_fold_probabilities(x, y, fit_predict, folds=2, tasks=two_workers,
                                                          on_fold=lambda i, total: seen.append((i, total)))
    np.testing.assert_array_equal(probabilities, expected)
    assert sorted(seen) == [(1, 2), (2, 2)]
    # a task's own refusal is told as in turn, not retried
    with pytest.raises(InputError, match=r"^out-of-fold model [12]: diverged at epoch 1: lower --lr$"):
        label_noise.out_of_fold_probabilities(
            x, y, label_noise.strategy_fit_predict("class_weight", TINY.replace(lr=1e9)), folds=2, tasks=two_workers)


def test_in_turn_a_tasks_refusal_names_it():
    def refuse(reason):
        raise InputError(reason)

    tasks = cluster.Tasks()
    assert tasks.share(np.zeros(2), None)[1] is None
    assert list(tasks.run(len, [("a", ("xy",), {})])) == [("a", 2)]
    with pytest.raises(InputError, match="^b: too few images$"):
        list(tasks.run(refuse, [("b", ("too few images",), {})]))


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--scheduler", "nowhere"], "argument --scheduler: expected a scheduler address tcp://HOST:PORT, got 'nowhere'"),
    (["--scheduler", "tcp://127.0.0.1:70000"], "expected a scheduler address tcp://HOST:PORT"),
    (["--scheduler", "127.0.0.1:8786", "--local-workers", "2"], "not allowed with argument"),
    (["--local-workers", "0"], "expected a positive integer"),
    (["--scheduler", "tcp://127.0.0.1:{port}"], "cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"),
])
def test_bad_cluster_flags_are_one_error_line_before_anything_is_created(flags, message, image_tree, tmp_path,
                                                                         monkeypatch, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 2)
    out = tmp_path / "run"
    status = run_command("imbalance", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(out),
                                       "--quick", "--quiet",
                                       *[f.format(port=port) for f in flags]])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert message.format(port=port) in err[0], err[0]
    assert not out.exists()


@pytest.mark.slow
def test_a_task_whose_process_is_killed_is_reported_by_its_signal():
    import os
    import signal

    def killed():  # the out-of-memory killer's way
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(cluster.TaskCrashed, match="^its process was killed by SIGKILL$"):
        cluster.pickled_call(killed, (), {})
