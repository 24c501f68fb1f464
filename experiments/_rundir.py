"""The run directory: config, metrics, report, plots and models, each written atomically.

A run directory belongs to one experiment and one set of settings. It is
opened only after every input was checked (:meth:`RunDir.open`), locked so
that a second process with the same ``--out`` is refused, and it remembers
whether it finished: the same command again resumes an interrupted run, and
reports a finished one as finished without changing a file.
"""

import copy
import datetime
import fcntl
import json
import os
import sys
from pathlib import Path

from keras_apml import atomic, machine
from keras_apml.errors import InputError

CONFIG, METRICS, REPORT, SECTIONS, LOCK = "config.json", "metrics.json", "report.md", ".report.json", ".lock"
# Flags that change what is printed or how fast, not what is computed: they may differ between the calls of one run.
PRESENTATION = ("quiet", "fresh", "out", "no_cache", "tensorboard")


class AlreadyFinished(Exception):
    """The run directory holds a finished run of the same settings: there is nothing to do."""


class RunDir:
    """One run's directory and what it holds.

    ``metrics.json`` has the shape ``{"experiment": NAME, "runs": {RUN: {SPLIT: {...}, "timing": {...}}}, ...}``
    and is rewritten after every recorded run, so an interrupted study keeps
    what it finished. ``report.md`` is made of keyed sections kept in
    ``.report.json``: a resumed run's report holds every section, the earlier
    calls' included, and a section written again replaces its earlier self.
    """

    _open = []  # directories this process holds locked; _contract.run closes them when the command ends

    def __init__(self, path, experiment, metrics, sections, lock):
        self.path, self.experiment = Path(path), experiment
        self._metrics, self._sections, self._lock = metrics, sections, lock
        RunDir._open.append(self)

    @classmethod
    def open(cls, experiment, out, settings, *, fresh=False, config=None):
        """Create ``out`` (default ``runs/<experiment>/<timestamp>/``) or resume the run in it.

        ``settings`` are the parsed arguments that decide the results; a run of
        other settings in ``out`` is refused with the differences named, a
        finished one raises :class:`AlreadyFinished`. ``fresh`` moves an earlier
        run aside (to ``<out>.replaced-<timestamp>``) and starts anew.
        ``config`` adds entries to a new run's config.json.
        """
        settings = {k: _plain(v) for k, v in settings.items() if k not in PRESENTATION}
        path = Path(out) if out is not None else Path("runs") / experiment / _stamp()
        if str(out) == "":
            raise InputError("--out is empty: give the run directory's path")
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path} is a file, not a directory")
        if fresh and path.is_dir() and any(path.iterdir()):
            aside = path.with_name(f"{path.name}.replaced-{_stamp()}")
            lock = _Lock(path)
            try:
                _rename(path, aside)
            finally:
                lock.release()
            print(f"note: the earlier run in {path} moved to {aside}", file=sys.stderr)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create run directory {path}: {e.strerror or e}") from None
        new_lock = not (path / LOCK).exists()
        lock = _Lock(path)
        try:
            run = cls._read(path, experiment, settings, lock)
            if run is None:
                run = cls(path, experiment, {"experiment": experiment, "runs": {}}, {}, lock)
                run._write_config(settings, config or {})
            return run
        except BaseException:
            if new_lock:  # a refused directory is left as it was found: no lock file of ours in it
                (path / LOCK).unlink(missing_ok=True)
            lock.release()
            raise

    @classmethod
    def _read(cls, path, experiment, settings, lock):
        """The run already in ``path`` (checked against ``experiment`` and ``settings``), or None."""
        config_file, metrics_file = path / CONFIG, path / METRICS
        if not config_file.is_file():
            if metrics_file.exists():
                raise InputError(f"{path} holds {METRICS} but no {CONFIG}: not a run this tool can resume; "
                                 "give another --out")
            return None
        config, metrics = _read_json(config_file, dict), _read_json(metrics_file, dict, missing={})
        if config.get("experiment") != experiment or metrics.get("experiment", experiment) != experiment:
            raise InputError(f"{path} holds a run of experiment {config.get('experiment')!r}; "
                             "give another --out to keep it intact")
        before = config.get("arguments", {})
        differ = [f"--{k.replace('_', '-')} {before.get(k)!r} there, {settings.get(k)!r} now"
                  for k in sorted(set(before) | set(settings))
                  if k not in PRESENTATION and before.get(k) != settings.get(k)]
        if differ:
            raise InputError(f"{path} holds a run with other settings ({'; '.join(differ)}); give another --out, "
                             "or --fresh to start that directory afresh")
        if metrics.get("finished"):
            raise AlreadyFinished(f"{path} holds a finished run of these settings ({metrics['finished']}): "
                                  "nothing to do; --fresh starts it afresh")
        for left in [p for p in path.rglob(".*") if p.is_file() and atomic.leftover(p.name)]:
            left.unlink()  # a write a killed call never finished; under the lock, nothing else writes here
        metrics = metrics or {"experiment": experiment, "runs": {}}
        metrics.setdefault("runs", {})
        sections = _read_json(path / SECTIONS, dict, missing={})
        return cls(path, experiment, metrics, sections, lock)

    def close(self):
        """Release the directory's lock (the process's exit does too)."""
        if self in RunDir._open:
            RunDir._open.remove(self)
            self._lock.release()

    @classmethod
    def close_all(cls):
        """Release every run directory this process holds."""
        for run in list(cls._open):
            run.close()

    def file(self, name):
        """The path of ``name`` inside the run directory."""
        return self.path / name

    @property
    def resumed(self):
        """Whether an earlier call recorded anything in this run."""
        return bool(self._metrics["runs"]) or bool(self._sections)

    def _write_config(self, settings, extra):
        """Write ``config.json``: the arguments, library versions and device."""
        atomic.write_json(self.file(CONFIG), {
            "experiment": self.experiment,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "arguments": settings,
            **extra,
            "versions": machine.library_versions(),
            "device": machine.device_description(),
        })

    # metrics.json
    def recorded(self, name):
        """A copy of one run's recorded results, or None."""
        found = self._metrics["runs"].get(name)
        return None if found is None else copy.deepcopy(found)

    def results(self):
        """A copy of everything recorded: ``{"experiment", "runs", ...}``."""
        return copy.deepcopy(self._metrics)

    def record(self, name, results):
        """Store one run's results (``{SPLIT: metrics, "timing": {...}, ...}``) and rewrite metrics.json."""
        self._metrics["runs"][name] = copy.deepcopy(results)
        self._write_metrics()

    def update(self, name, **fields):
        """Add or replace some entries of one recorded run's results."""
        self._metrics["runs"].setdefault(name, {}).update(copy.deepcopy(fields))
        self._write_metrics()

    def note(self, key, value):
        """A top-level entry of metrics.json beside the runs (``best``, ``data``, ...)."""
        if key in ("experiment", "runs", "finished"):
            raise ValueError(f"{key!r} is kept by the run directory itself")
        self._metrics[key] = copy.deepcopy(value)
        self._write_metrics()

    def finish(self):
        """Mark the run finished: the same command again will change nothing."""
        self._metrics["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
        self._write_metrics()

    def _write_metrics(self):
        atomic.write_json(self.file(METRICS), self._metrics)

    # files
    def save_figure(self, fig, name):
        """Save a matplotlib figure as PNG and close it; returns the file name."""
        import matplotlib.pyplot as plt

        try:
            with atomic.atomic_path(self.file(name)) as tmp:
                fig.savefig(tmp, dpi=110, format="png")
        finally:
            plt.close(fig)
        return name

    def save_model(self, model, name="model.keras"):
        """Save a Keras model as a ``.keras`` file; returns the file name."""
        with atomic.atomic_path(self.file(name)) as tmp:
            try:
                model.save(tmp)
            except OSError:
                raise
            except Exception as e:  # noqa: BLE001 - Keras and zipfile report a failed write in many ways
                raise OSError(f"cannot write {self.file(name)} ({type(e).__name__}: {e})") from None
        return name

    # report.md: keyed sections in first-written order, the file rewritten each time.
    def add_section(self, key, markdown):
        """Put a block of markdown into report.md under ``key`` (replacing an earlier one of that key)."""
        self._sections[key] = markdown.strip() + "\n"
        atomic.write_json(self.file(SECTIONS), self._sections)
        atomic.write_text(self.file(REPORT), f"# {self.experiment}\n\n" + "\n".join(self._sections.values()))


def _stamp():
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _plain(value):
    """A JSON-ready form of a parsed argument (paths as strings, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def read_metrics(path):
    """The metrics.json of the run in directory ``path``: ``{}`` when it has none, an InputError when it cannot be
    read as this tool's."""
    try:
        content = json.loads((Path(path) / METRICS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{Path(path) / METRICS} cannot be read as JSON ({type(e).__name__})") from None
    return content if isinstance(content, dict) else {}


def _read_json(path, kind, missing=None):
    """A JSON file's content, which must be a ``kind``; ``missing`` when there is no file."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing is not None:
            return missing
        raise InputError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} cannot be read as JSON ({type(e).__name__}); give another --out to keep it "
                         "intact") from None
    if not isinstance(content, kind):
        raise InputError(f"{path} holds a {type(content).__name__}, not this tool's {kind.__name__}; give another "
                         "--out to keep it intact")
    return content


def _rename(source, target):
    try:
        os.rename(source, target)
    except OSError as e:
        raise InputError(f"cannot move {source} aside to {target}: {e.strerror or e}") from None


def lock(path, hint="wait for it"):
    """Hold run directory ``path``'s lock until ``release()``, or one InputError ending in ``hint`` when another
    process holds it."""
    return _Lock(Path(path), hint)


class _Lock:
    """An exclusive lock on ``path/.lock``, or one InputError: one process per run directory."""

    def __init__(self, path, hint="wait for it or give another --out"):
        try:
            self.handle = open(path / LOCK, "a+")
        except OSError as e:
            raise InputError(f"cannot write in run directory {path}: {e.strerror or e}") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise InputError(f"another process is writing run directory {path}; {hint}") from None

    def release(self):
        if not self.handle.closed:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
