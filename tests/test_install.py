"""The package installs with pip and its experiments run from any directory."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_the_installed_package_runs_a_quick_experiment_from_another_directory(image_tree, tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the repository
    for name in ("keras_apml", "experiments"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, timeout=300,
                   capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import experiments.train, keras_apml.recipe as r; "
                            "import keras_apml.review_server as s; "
                            "print(experiments.train.__file__); print(r.__file__); print(s.PAGE)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60, check=True)
    *modules, page = where.stdout.split()
    assert [Path(p).parent.parent for p in modules] == [site, site]  # the installed copy, not ours
    assert Path(page) == site / "keras_apml" / "review_page.html" and Path(page).is_file()  # package data too
    done = subprocess.run([sys.executable, "-m", "experiments.train", "--data-dir", str(image_tree[0]), "--out",
                           "run", "--quick", "--quiet"], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "run directory: run"
    assert (elsewhere / "run" / "model.keras").is_file() and (elsewhere / "run" / "metrics.json").is_file()
