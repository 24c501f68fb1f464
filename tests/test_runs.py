import json

import numpy as np
import pytest

from keras_apml import atomic, runs
from keras_apml.errors import InputError


def test_metrics_json_is_rewritten_after_each_run_and_kept_on_reopen(tmp_path):
    run = runs.RunDir(tmp_path / "r", "demo")
    run.record("a", {"dev": {"accuracy": np.float32(0.5)}, "timing": {"fit_seconds": 1.0}})
    run.record("b", {"dev": {"accuracy": 0.75}})
    reopened = runs.RunDir(tmp_path / "r", "demo")
    reopened.record("c", {})
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved == {"experiment": "demo", "runs": {"a": {"dev": {"accuracy": 0.5}, "timing": {"fit_seconds": 1.0}},
                                                    "b": {"dev": {"accuracy": 0.75}}, "c": {}}}


def test_reopening_keeps_the_earlier_report(tmp_path):
    runs.RunDir(tmp_path, "demo").add_section("first call")
    runs.RunDir(tmp_path, "demo").add_section("second call")
    assert (tmp_path / "report.md").read_text() == "# demo\n\nsecond call\n"
    [earlier] = tmp_path.glob("report-*.md")
    assert earlier.read_text() == "# demo\n\nfirst call\n"


def test_another_experiments_directory_is_refused_not_overwritten(tmp_path):
    runs.RunDir(tmp_path, "train").record("a", {"dev": {"accuracy": 0.5}})
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(InputError, match="holds a run of experiment 'train'"):
        runs.RunDir(tmp_path, "cifar_transfer")
    assert (tmp_path / "metrics.json").read_text() == before


def test_a_corrupt_metrics_file_is_not_overwritten(tmp_path):
    (tmp_path / "metrics.json").write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON"):
        runs.RunDir(tmp_path, "demo")
    assert (tmp_path / "metrics.json").read_text() == "{broken"


def test_nan_is_refused_rather_than_written(tmp_path):
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "m.json", {"loss": float("nan")})
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_default_run_directory_is_under_runs_experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = runs.RunDir.create("demo")
    assert run.path.parent == tmp_path.joinpath("runs", "demo").relative_to(tmp_path) and run.path.is_dir()


def test_report_sections_accumulate_in_order(tmp_path):
    run = runs.RunDir(tmp_path, "demo")
    run.add_section("## One")
    run.add_section(runs.markdown_table(["name", "acc", "f1"], [("x", 0.12345, None)]))
    assert (tmp_path / "report.md").read_text() == (
        "# demo\n\n## One\n\n| name | acc | f1 |\n|---|---|---|\n| x | 0.1235 | — |\n")


def test_progress_is_one_line_per_configuration(capsys):
    runs.progress(3, 8, "lr=1e-3 batch=32")
    runs.progress(4, 8, "lr=1e-2", quiet=True)
    assert capsys.readouterr().out == "[3/8] lr=1e-3 batch=32\n"
