"""Plots for run directories (matplotlib, no display needed). Each returns a Figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
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
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.45 * rows + (0.4 if title else 0)), squeeze=False)
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


def confusion_matrix(counts, class_names, title="Confusion matrix"):
    """Counts and row-normalised rates side by side (sklearn's ConfusionMatrixDisplay)."""
    counts = np.asarray(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    size = 2.5 + 0.45 * len(class_names)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, matrix, fmt, label in ((axes[0], counts, "d", "counts"), (axes[1], rates, ".2f", "row-normalised")):
        ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(
            ax=ax, values_format=fmt, colorbar=False, xticks_rotation=45 if len(class_names) > 4 else "horizontal"
        )
        ax.set_title(label)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(history, title="Training curves", diverged_epoch=None):
    """Loss and accuracy per epoch, training and validation; a divergence is marked, not plotted as 0."""
    keys = [k for k in ("loss", "accuracy") if k in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = np.array([np.nan if v is None else v for v in history.get(prefix + key, [])], dtype=float)
            if len(values):
                ax.plot(np.arange(1, len(values) + 1), values, style, marker=".", label=(prefix or "train_") + key)
        if diverged_epoch is not None:
            ax.axvline(diverged_epoch, color="red", linestyle=":", label=f"diverged (epoch {diverged_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def grouped_bars(categories, series, ylabel, title):
    """Bars per category, one colour per named series of ``(means, stds)``, with std error bars."""
    fig, ax = plt.subplots(figsize=(1.5 + 0.75 * len(categories) * max(1, len(series)) ** 0.5, 4.2))
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(categories))
    for i, (name, (means, stds)) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(positions + offset, means, width, yerr=stds, capsize=3, label=name)
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
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (solid: train, dashed: validation)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def metric_curves(series, ylabel, title):
    """Named per-epoch series on one plot (e.g. balanced accuracy on validation and dev)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def eps_curves(results, title="Accuracy under attack"):
    """Accuracy (solid) and balanced accuracy (dashed) against eps, one colour per attack.

    ``results`` maps attack -> {eps as text: {"accuracy", "balanced_accuracy"}}.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (attack, by_eps) in enumerate(results.items()):
        eps = [float(e) for e in by_eps]
        for key, style in (("accuracy", "-"), ("balanced_accuracy", "--")):
            ax.plot(eps, [by_eps[e][key] for e in by_eps], style, marker="o", color=colours[i % len(colours)],
                    label=f"{attack.upper()} {key.replace('_', ' ')}")
    ax.set_xscale("symlog", linthresh=0.005)
    ax.set_xlabel("eps (L-infinity, [0, 1] pixels)")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
