"""Plots for run directories (matplotlib, no display needed). Each returns a Figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.lines  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def class_distribution(label_sets, class_names, title="Class distribution"):
    """Grouped bars of class counts, one group per named label set (e.g. train, dev)."""
    width_inches = 1.2 + 0.9 * len(class_names) * max(1, len(label_sets)) ** 0.5
    fig, ax = plt.subplots(figsize=(width_inches, 3.6))
    width = 0.8 / max(1, len(label_sets))
    positions = np.arange(len(class_names))
    for i, (name, labels) in enumerate(label_sets.items()):
        counts = np.bincount(np.asarray(labels), minlength=len(class_names))
        offset = (i - (len(label_sets) - 1) / 2) * width
        bars = ax.bar(positions + offset, counts, width, label=f"{name} (n={len(labels)})")
        ax.bar_label(bars, fontsize=7)
    many = len(class_names) > 4
    ax.set_xticks(positions, class_names, rotation=45 if many else 0, ha="right" if many else "center")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def image_grid(images, titles, columns=8, title=None):
    """A grid of uint8 or [0, 1] images with a caption above each."""
    rows = max(1, int(np.ceil(len(images) / columns)))
    lines = max((str(t).count("\n") + 1 for t in titles), default=1)  # caption lines: room above each image
    height = (1.2 + 0.13 * lines) * rows + (0.4 if title else 0)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, height), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, caption in zip(axes.ravel(), images, titles):
        ax.imshow(image if image.dtype == np.uint8 else np.clip(image, 0, 1))
        ax.set_title(caption, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sample_grid(x, y, class_names, per_class=8, seed=0):
    """A row of ``per_class`` randomly chosen images for each class."""
    rng = np.random.default_rng(seed)
    images, titles = [], []
    for label, name in enumerate(class_names):
        pool = np.flatnonzero(np.asarray(y) == label)
        chosen = rng.choice(pool, size=min(per_class, len(pool)), replace=False)
        images += [x[i] for i in chosen] + [np.zeros_like(x[0])] * (per_class - len(chosen))
        titles += [name] * len(chosen) + [""] * (per_class - len(chosen))
    return image_grid(images, titles, columns=per_class, title="Samples per class")


MAX_MATRIX_CLASSES = 50  # past this a confusion matrix is unreadable: the top confusions are drawn instead


def confusion_matrix(counts, class_names, title="Confusion matrix"):
    """Counts and row-normalised rates side by side (sklearn's ConfusionMatrixDisplay), its size and fonts scaled
    to the number of classes (cell values left out past 25); past 50 classes, the top confusions as bars."""
    counts = np.asarray(counts)
    k = len(class_names)
    if k > MAX_MATRIX_CLASSES:
        return _top_confusions(counts, class_names, title)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    size = min(2.5 + 0.45 * k, 4 + 0.22 * k)
    font = 10 if k <= 10 else max(5, 10 - (k - 10) / 3)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, matrix, fmt, label in ((axes[0], counts, "d", "counts"), (axes[1], rates, ".2f", "row-normalised")):
        ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(
            ax=ax, values_format=fmt, colorbar=False, xticks_rotation=45 if k > 4 else "horizontal",
            include_values=k <= 25, text_kw={"fontsize": font})
        ax.tick_params(labelsize=font)
        ax.set_title(label)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _top_confusions(counts, class_names, title, shown=30):
    """The ``shown`` largest off-diagonal counts as horizontal bars, ``true -> predicted``."""
    off = np.asarray(counts, dtype=float).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:shown]
    pairs = [(i, j) for i, j in zip(*np.unravel_index(order, off.shape)) if off[i, j] > 0]
    fig, ax = plt.subplots(figsize=(8, 1 + 0.25 * max(1, len(pairs))))
    ax.barh([f"{class_names[i]} -> {class_names[j]}" for i, j in pairs][::-1], [off[i, j] for i, j in pairs][::-1])
    ax.set_xlabel("images (true -> predicted)")
    ax.set_title(f"{title}: the {len(pairs)} largest confusions of {len(class_names)} classes")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def _epoch_axis(ax, epochs):
    """An x axis of whole epochs 1..``epochs`` (one epoch shows as one tick, not a fractional scale)."""
    ax.set_xlim(0.5, max(1, epochs) + 0.5)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")


def training_curves(history, title="Training curves", diverged_epoch=None, best_epoch=None, validation="validation",
                    num_classes=None):
    """Loss and accuracy per epoch: training solid, the ``validation`` set dashed, its balanced accuracy dotted
    beside its plain accuracy, with chance (1/classes); the epoch whose weights were kept and a divergence marked."""
    keys = [k for k in ("loss", "accuracy") if k in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        lines = [(key, "-", f"train {key}"), ("val_" + key, "--", f"{validation} {key}")]
        if key == "accuracy":
            lines.append(("val_balanced_accuracy", ":", f"{validation} balanced accuracy"))
        for name, style, label in lines:
            values = np.array([np.nan if v is None else v for v in history.get(name, [])], dtype=float)
            if len(values):
                ax.plot(np.arange(1, len(values) + 1), values, style, marker=".", label=label)
        if key == "accuracy":
            if num_classes and "val_balanced_accuracy" in history:
                ax.axhline(1 / num_classes, color="grey", linewidth=0.8,
                           label=f"chance balanced accuracy (1/{num_classes})")
            ax.set_ylim(0, 1)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="green", linestyle="-.", linewidth=1,
                       label=f"weights kept (epoch {best_epoch})")
        if diverged_epoch is not None:
            ax.axvline(diverged_epoch, color="red", linestyle=":", label=f"diverged (epoch {diverged_epoch})")
        _epoch_axis(ax, max(len(v) for v in history.values() if isinstance(v, list)))
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def grouped_bars(categories, series, ylabel, title, chance=None):
    """Bars per category, one colour per named series of ``(means, stds)``; std error bars where a std is given
    (more than one seed), and ``chance`` as a line with its label, e.g. ``(1/3, "chance (1/3)")``."""
    fig, ax = plt.subplots(figsize=(1.5 + 0.75 * len(categories) * max(1, len(series)) ** 0.5, 4.2))
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(categories))
    for i, (name, (means, stds)) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        errors = None if stds is None or all(s is None for s in stds) else [s or 0 for s in stds]
        ax.bar(positions + offset, means, width, yerr=errors, capsize=3, label=name)
    if chance is not None:
        ax.axhline(chance[0], color="black", linestyle="--", linewidth=1, label=chance[1])
    ax.set_xticks(positions, categories, rotation=40, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def loss_curves(runs, title="Loss per epoch"):
    """Training (solid) and validation (dashed) loss of several runs on one log-scale plot.

    ``runs`` maps a label to ``(history, diverged_epoch or None)``; a diverged
    run ends in a red cross at the epoch its loss stopped being finite.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, (history, diverged_epoch)) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        suffix = f" (diverged at epoch {diverged_epoch})" if diverged_epoch else ""
        for key, style in (("loss", "-"), ("val_loss", "--")):
            values = np.array([np.nan if v is None else v for v in history.get(key, [])], dtype=float)
            values[~np.isfinite(values) | (values <= 0)] = np.nan
            ax.plot(np.arange(1, len(values) + 1), values, style, color=colour, marker=".",
                    label=f"{label}{suffix}" if key == "loss" else None)
        if diverged_epoch:
            finite = [v for v in history.get("loss", [])[:diverged_epoch - 1] if v is not None and np.isfinite(v)]
            ax.plot([diverged_epoch], [finite[-1] if finite else 1.0], "x", color="red", markersize=10)
    ax.set_yscale("log")
    _epoch_axis(ax, max((len(h.get("loss", [])) for h, _ in runs.values()), default=1))
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    styles = [matplotlib.lines.Line2D([], [], color="black", linestyle="-", label="train (solid)"),
              matplotlib.lines.Line2D([], [], color="black", linestyle="--", label="validation (dashed)")]
    if any(diverged for _, diverged in runs.values()):
        styles.append(matplotlib.lines.Line2D([], [], color="red", marker="x", linestyle="", label="diverged"))
    ax.legend(handles=styles + handles, fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def metric_curves(series, ylabel, title, best=None):
    """Named per-epoch series on one plot (e.g. balanced accuracy on validation and dev); ``best`` marks an epoch."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
    if best is not None:
        ax.axvline(best, color="green", linestyle="-.", linewidth=1, label=f"best on validation (epoch {best})")
    _epoch_axis(ax, max((len(v) for v in series.values()), default=1))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def eps_curves(results, title="Accuracy under attack", num_classes=None):
    """Accuracy (solid) and balanced accuracy (dashed) against eps, one colour per attack, ticks at the eps measured.

    ``results`` maps attack -> {eps as text: {"accuracy", "balanced_accuracy"}};
    ``num_classes`` draws chance balanced accuracy.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (attack, by_eps) in enumerate(results.items()):
        eps = [float(e) for e in by_eps]
        for key, style in (("accuracy", "-"), ("balanced_accuracy", "--")):
            ax.plot(eps, [by_eps[e][key] for e in by_eps], style, marker="o", color=colours[i % len(colours)],
                    label=f"{attack.upper()} {key.replace('_', ' ')}")
    measured = sorted({float(e) for by_eps in results.values() for e in by_eps})
    positive = [e for e in measured if e > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(measured))  # ticks where there is data, only there
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{e:g}" for e in measured]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel("eps (L-infinity, [0, 1] pixels)")
    if num_classes:
        ax.axhline(1 / num_classes, color="grey", linewidth=0.8, label=f"chance balanced accuracy (1/{num_classes})")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
