"""The cache in the open: what is there, clearing it, and running without it."""

import numpy as np
import pytest
from conftest import run_command, write_image_tree

from experiments import cache as cache_command
from keras_apml import cache, cifar10


def fill(tmp_path):
    """A cache with decoded images, model outputs, an unfinished write and a file of the user's."""
    write_image_tree(tmp_path / "tree", per_class_train=1, per_class_test=1)
    cifar10.load_cifar10(tmp_path / "tree")
    cache.save(FEATURES, {"train": np.ones((3, 4), np.float32)}, about="outputs of a test model")
    directory = tmp_path / "cache"
    (directory / UNFINISHED).write_bytes(b"PK half")
    (directory / "notes.txt").write_text("the user's own file")
    for name in USERS:  # named as the cache's kinds, but not by the cache
        np.savez(directory / name, x=np.arange(3))
    return directory


FEATURES, UNFINISHED = "features-" + "ab" * 12 + ".npz", ".features-" + "de" * 12 + ".npz.x1y2_3z4.npz"
USERS = ("images-holiday.npz", "features-mine.npz", ".features-mine.npz.x1y2_3z4.npz")


@pytest.mark.slow
def test_the_listing_names_every_entry_its_size_and_what_it_holds(tmp_path, capsys):
    directory = fill(tmp_path)
    assert run_command("cache", []) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"cache directory: {directory} (set KERAS_APML_CACHE to move it)"
    rows = {line.split()[5]: line for line in out[1:-1]}
    images = next(p for p in directory.glob("cifar10-*.npz"))
    assert set(rows) == {images.name, FEATURES, UNFINISHED}
    assert rows[images.name].endswith(f"CIFAR-10 images decoded from {(tmp_path / 'tree').resolve()}")
    assert rows[FEATURES].endswith("outputs of a test model")
    assert rows[UNFINISHED].endswith("an unfinished write (a stopped process)")
    total = sum(p.stat().st_size for p in directory.iterdir() if p.name not in ("notes.txt", *USERS))
    assert out[-1].startswith("3 entries, ") and f"{total / 1000:.1f} kB" in out[-1]


@pytest.mark.slow
def test_clearing_one_kind_then_all_touches_nothing_else(tmp_path, capsys):
    directory = fill(tmp_path)
    assert run_command("cache", ["--clear", "features"]) == 0
    assert capsys.readouterr().out.startswith("removed 2 entries")
    assert sorted(p.name.split("-")[0] for p in directory.iterdir() if p.name not in USERS) == ["cifar10", "notes.txt"]
    users = {name: (directory / name).read_bytes() for name in USERS}
    assert run_command("cache", ["--clear"]) == 0
    assert sorted(p.name for p in directory.iterdir()) == sorted(["notes.txt", *USERS])
    assert (directory / "notes.txt").read_text() == "the user's own file"
    assert {name: (directory / name).read_bytes() for name in USERS} == users
    assert run_command("cache", []) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 entries, 0 B"


def test_a_cache_directory_that_is_a_file_is_one_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "a_file").write_text("not a directory")
    monkeypatch.setenv("KERAS_APML_CACHE", str(tmp_path / "a_file"))
    assert run_command("cache", []) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: the cache directory {tmp_path / 'a_file'} is not a "
                                                    "directory (set KERAS_APML_CACHE to a directory)"]
    assert (tmp_path / "a_file").read_text() == "not a directory"


@pytest.mark.slow
def test_a_missing_cache_directory_lists_as_empty(tmp_path, capsys):
    assert run_command("cache", []) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 entries, 0 B"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("experiment", ["baseline", "cifar_transfer", "feature_extraction"])
def test_no_cache_is_a_flag_of_every_study_and_switches_the_cache_off(experiment):
    import importlib

    from experiments import _data

    module = importlib.import_module(f"experiments.{experiment}")
    args = module.parse_args(["--no-cache"])
    assert cache.is_enabled()  # parsing changes nothing outside its namespace
    _data.use_cache(args)  # what every loader of the experiments does first
    assert not cache.is_enabled()
    _data.use_cache(module.parse_args([]))
    assert cache.is_enabled()


def test_without_the_cache_nothing_is_read_or_written(tmp_path):
    write_image_tree(tmp_path / "tree", per_class_train=1, per_class_test=1)
    cifar10.load_cifar10(tmp_path / "tree")
    [entry] = (tmp_path / "cache").glob("cifar10-*.npz")
    before = entry.read_bytes()
    cache.set_enabled(False)
    assert cache.load(entry.name) is None
    cache.save("features-x.npz", {"a": np.zeros(2)}, about="x")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [entry.name] and entry.read_bytes() == before
    assert cache_command.size(184_320_123) == "184.3 MB"
