"""Run directories: config, metrics, report, plots and models, each written atomically."""

import datetime
import json
import platform
import sys
from pathlib import Path

from keras_apml import atomic
from keras_apml.errors import InputError


class RunDir:
    """One run's directory and what it holds.

    ``metrics.json`` has the shape ``{"experiment": NAME, "runs": {RUN: {SPLIT: {...}, "timing": {...}}}}``
    and is rewritten after every recorded run, so an interrupted study keeps
    what it finished. Re-opening a directory keeps the runs already recorded
    and renames an existing report.md to report-<timestamp>.md.
    """

    def __init__(self, path, experiment):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.experiment = experiment
        self.metrics = {"experiment": experiment, "runs": {}}
        existing = self.path / "metrics.json"
        if existing.is_file():
            try:
                previous = json.loads(existing.read_text())
            except json.JSONDecodeError:
                raise InputError(f"{existing} is not valid JSON; give another --out to keep it intact") from None
            if previous.get("experiment") != experiment:
                raise InputError(f"{self.path} holds a run of experiment {previous.get('experiment')!r}; "
                                 "give another --out to keep it intact")
            self.metrics["runs"].update(previous.get("runs", {}))
        if (self.path / "report.md").is_file():  # this call writes a new report; the old one is kept
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            (self.path / "report.md").rename(self.path / f"report-{stamp}.md")
        self.sections = []

    @classmethod
    def create(cls, experiment, out=None):
        """Open ``out``, or a new ``runs/<experiment>/<timestamp>/``."""
        if out is None:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            out = Path("runs") / experiment / stamp
        return cls(out, experiment)

    def file(self, name):
        """The path of ``name`` inside the run directory."""
        return self.path / name

    def write_config(self, args, **extra):
        """Write ``config.json``: the arguments, library versions and device."""
        atomic.write_json(self.file("config.json"), {
            "experiment": self.experiment,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            **extra,
            "versions": library_versions(),
            "device": device_description(),
        })

    def record(self, run_name, results):
        """Store one run's results (``{SPLIT: metrics, "timing": {...}, ...}``) and rewrite metrics.json."""
        self.metrics["runs"][run_name] = results
        atomic.write_json(self.file("metrics.json"), self.metrics)

    def save_figure(self, fig, name):
        """Save a matplotlib figure as PNG and close it; returns the file name."""
        import matplotlib.pyplot as plt

        with atomic.atomic_path(self.file(name)) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        return name

    def save_model(self, model, name="model.keras"):
        """Save a Keras model as a ``.keras`` file; returns the file name."""
        with atomic.atomic_path(self.file(name)) as tmp:
            model.save(tmp)
        return name

    # report.md: sections appended in order, the file rewritten each time.
    def add_section(self, markdown):
        """Append a block of markdown to report.md."""
        self.sections.append(markdown.strip() + "\n")
        atomic.write_text(self.file("report.md"), f"# {self.experiment}\n\n" + "\n".join(self.sections))


def progress(index, total, description, quiet=False):
    """Print the one line a multi-run study shows per configuration: ``[3/8] lr=1e-3 ...``."""
    if not quiet:
        print(f"[{index}/{total}] {description}", flush=True)


def markdown_table(headers, rows):
    """A markdown table; floats get four decimals, None shows as an em dash."""
    def cell(v):
        if v is None:
            return "—"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def model_summary(model):
    """The text of ``model.summary()``."""
    lines = []
    model.summary(print_fn=lambda line, line_break=True: lines.append(line), line_length=100)
    return "\n".join(lines)


def library_versions():
    """Versions of Python and the libraries a run depends on."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "scikit-learn", "imbalanced-learn", "matplotlib", "cleanlab"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def device_description():
    """The accelerators TensorFlow sees, or the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "gpus": [gpu.name for gpu in gpus],
        "device": "GPU" if gpus else "CPU",
    }

