"""The run directory: created only when asked, locked, resumed or refused, never silently overwritten."""

import json
import os

import numpy as np
import pytest

from experiments import _rundir as runs
from keras_apml import atomic, progress, report
from keras_apml.errors import InputError

SETTINGS = {"lr": 0.001, "epochs": 3, "quiet": False, "out": "x"}


@pytest.fixture(autouse=True)
def _release():
    yield
    runs.RunDir.close_all()


def test_metrics_json_is_rewritten_after_each_run_and_kept_on_reopen(tmp_path):
    run = runs.RunDir.open("demo", tmp_path / "r", SETTINGS)
    run.record("a", {"dev": {"accuracy": np.float32(0.5)}, "timing": {"fit_seconds": 1.0}})
    run.record("b", {"dev": {"accuracy": 0.75}})
    run.update("b", extra=[1, 2])
    run.close()
    reopened = runs.RunDir.open("demo", tmp_path / "r", {**SETTINGS, "quiet": True})  # presentation may differ
    assert reopened.resumed and reopened.recorded("b") == {"dev": {"accuracy": 0.75}, "extra": [1, 2]}
    reopened.record("c", {})
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved == {"experiment": "demo", "runs": {"a": {"dev": {"accuracy": 0.5}, "timing": {"fit_seconds": 1.0}},
                                                    "b": {"dev": {"accuracy": 0.75}, "extra": [1, 2]}, "c": {}}}


def test_a_resumed_report_holds_every_section_and_replaces_a_rewritten_one(tmp_path):
    run = runs.RunDir.open("demo", tmp_path, SETTINGS)
    run.add_section("intro", "first call's intro")
    run.add_section("a", "## a\n\nfinished in the first call")
    run.close()
    again = runs.RunDir.open("demo", tmp_path, SETTINGS)
    again.add_section("intro", "second call's intro")
    again.add_section("b", "## b")
    assert (tmp_path / "report.md").read_text() == (
        "# demo\n\nsecond call's intro\n\n## a\n\nfinished in the first call\n\n## b\n")
    assert not list(tmp_path.glob("report-*.md"))


def test_another_experiments_directory_is_refused_not_overwritten(tmp_path):
    runs.RunDir.open("train", tmp_path, SETTINGS).record("a", {"dev": {"accuracy": 0.5}})
    runs.RunDir.close_all()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputError, match="holds a run of experiment 'train'"):
        runs.RunDir.open("cifar_transfer", tmp_path, SETTINGS)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_other_settings_are_refused_with_the_differences_named(tmp_path):
    runs.RunDir.open("demo", tmp_path, SETTINGS)
    runs.RunDir.close_all()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputError, match=r"other settings \(--epochs 3 there, 5 now; --lr 0.001 there, 0.01 now\)"):
        runs.RunDir.open("demo", tmp_path, {**SETTINGS, "lr": 0.01, "epochs": 5})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_finished_run_is_reported_finished_and_fresh_moves_it_aside(tmp_path):
    run = runs.RunDir.open("demo", tmp_path / "r", SETTINGS)
    run.record("a", {"x": 1})
    run.finish()
    run.close()
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    with pytest.raises(runs.AlreadyFinished, match="holds a finished run of these settings"):
        runs.RunDir.open("demo", tmp_path / "r", SETTINGS)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before
    fresh = runs.RunDir.open("demo", tmp_path / "r", {**SETTINGS, "lr": 0.5}, fresh=True)
    assert not fresh.resumed and fresh.recorded("a") is None
    [aside] = tmp_path.glob("r.replaced-*")
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == before


def test_a_second_process_on_the_same_directory_is_refused(tmp_path):
    runs.RunDir.open("demo", tmp_path, SETTINGS)
    with pytest.raises(InputError, match="another process is writing run directory"):
        runs.RunDir.open("demo", tmp_path, SETTINGS)
    runs.RunDir.close_all()
    runs.RunDir.open("demo", tmp_path, SETTINGS)  # free again


CONFIG = json.dumps({"experiment": "demo", "arguments": {"lr": 0.001, "epochs": 3}})


@pytest.mark.parametrize("files, message", [
    ({"config.json": CONFIG, "metrics.json": "{broken"}, "metrics.json cannot be read as JSON"),
    ({"config.json": CONFIG, "metrics.json": "[1, 2]"}, "metrics.json holds a list, not this tool's dict"),
    ({"config.json": "[1]"}, "config.json holds a list"),
    ({"config.json": CONFIG, "metrics.json": "\xff\xfe"}, "metrics.json cannot be read as JSON"),
    ({"metrics.json": "{}"}, "holds metrics.json but no config.json"),
    ({"metrics.json": "[1, 2]"}, "holds metrics.json but no config.json"),
    ({"metrics.json": "{broken"}, "holds metrics.json but no config.json"),
])
def test_damaged_run_files_are_refused_and_left_as_they_are(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_bytes(text.encode("latin-1"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputError, match=message):
        runs.RunDir.open("demo", tmp_path, SETTINGS)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no lock file left behind either


def test_out_that_is_a_file_or_empty_is_refused(tmp_path):
    (tmp_path / "f").write_text("kept")
    with pytest.raises(InputError, match="is a file, not a directory"):
        runs.RunDir.open("demo", tmp_path / "f", SETTINGS)
    with pytest.raises(InputError, match="cannot create run directory .*Not a directory"):
        runs.RunDir.open("demo", tmp_path / "f" / "sub", SETTINGS)
    with pytest.raises(InputError, match="--out is empty"):
        runs.RunDir.open("demo", "", SETTINGS)
    assert (tmp_path / "f").read_text() == "kept"


def test_nan_is_refused_rather_than_written(tmp_path):
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "m.json", {"loss": float("nan")})
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_written_files_follow_the_umask(tmp_path):
    atomic.write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_default_run_directory_is_under_runs_experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = runs.RunDir.open("demo", None, SETTINGS)
    assert run.path.parent == tmp_path.joinpath("runs", "demo").relative_to(tmp_path) and run.path.is_dir()


def test_markdown_tables_format_floats_and_missing_values():
    assert report.markdown_table(["name", "acc", "f1"], [("x", 0.12345, None)]) == (
        "| name | acc | f1 |\n|---|---|---|\n| x | 0.1235 | — |")


def test_progress_gives_the_time_left_from_the_steps_trained(capsys):
    now = iter([0.0, 0.0, 100.0, 250.0, 250.0])  # started at 0; steps start at 0, 100, 250 (kept), 250
    step = progress.StudyProgress(6, clock=lambda: next(now))
    step("none seed 0")
    step("class_weight seed 0")
    step("under seed 0", kept=True)
    step("smote seed 0")
    progress.StudyProgress(2, quiet=True, clock=lambda: 0.0)("silent")
    assert capsys.readouterr().out.splitlines() == [
        "[1/6] none seed 0",
        "[2/6] class_weight seed 0 (1:40 so far, about 8:20 left)",  # 100 s a step, 5 steps to go
        "[3/6] under seed 0: recorded in an earlier call, kept (4:10 so far, about 8:20 left)",  # 125 s a step
        "[4/6] smote seed 0 (4:10 so far, about 6:15 left)",  # the kept step took no time: 125 s a step, 3 to go
    ]


def test_a_resumed_run_removes_the_temporary_files_a_killed_call_left_and_nothing_else(tmp_path):
    run = runs.RunDir.open("demo", tmp_path / "r", SETTINGS)
    run.record("a", {})
    run.close()
    (tmp_path / "r" / "backup_a").mkdir()
    left = [tmp_path / "r" / ".model.keras.k3_9zq0a.keras",  # as atomic_path names them, and a kill leaves them
            tmp_path / "r" / "backup_a" / ".epoch-000002.weights.h5.0a1b2c3d.weights.h5"]
    kept = [tmp_path / "r" / ".mine", tmp_path / "r" / "backup_a" / "epoch-000001.weights.h5",
            tmp_path / "r" / ".notes.txt.short.txt"]
    for path in left + kept:
        path.write_bytes(b"half")
    with atomic.atomic_path(tmp_path / "elsewhere" / "model.keras") as tmp:  # the names are the module's own
        assert atomic.leftover(tmp.name) == "model.keras"
    runs.RunDir.open("demo", tmp_path / "r", SETTINGS)
    assert not any(p.exists() for p in left) and all(p.read_bytes() == b"half" for p in kept)
