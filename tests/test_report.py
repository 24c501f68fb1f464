"""Reports and plots that say what they show: each fix of "the user's view" checked on what a reader gets."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from experiments import cifar_transfer, hyperparams
from keras_apml import models, plots, report
from keras_apml.recipe import CIFAR_AUGMENT, CIFAR_CONVNET, VGG19_HEAD
from keras_apml.trainer import TrainResult


def test_one_seed_shows_no_spread_and_several_show_their_population_std():
    assert report._mean_std([0.5]) == (0.5, None) and report.mean_std((0.5, None)) == "0.500"
    assert report._mean_std([0.5, 0.7]) == pytest.approx((0.6, 0.1))
    assert report.mean_std(report._mean_std([0.5, 0.7])) == "0.600 ± 0.100"
    assert report.mean_std((None, None)) == "—"


def bars(ax):
    from matplotlib.container import BarContainer

    [container] = [c for c in ax.containers if isinstance(c, BarContainer)]
    return container


def test_the_bar_chart_draws_error_bars_only_for_a_spread_and_always_a_chance_line():
    fig = plots.grouped_bars(["none", "smote"], {"true dev labels": ([0.4, 0.6], [None, None])}, "score", "t",
                             chance=(1 / 3, "chance (1/3)"))
    ax = fig.axes[0]
    assert bars(ax).errorbar is None  # one seed: no "± 0.000" bars
    assert [line.get_ydata()[0] for line in ax.get_lines()] == [pytest.approx(1 / 3)]
    assert "chance (1/3)" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    fig = plots.grouped_bars(["none", "smote"], {"s": ([0.4, 0.6], [0.01, 0.02])}, "score", "t")
    assert bars(fig.axes[0]).errorbar is not None
    plt.close(fig)


def sweep(scores):
    return {label: {"training": {"status": "completed", "epochs_run": 2, "history": {"loss": [1.0, 0.5]}},
                    "timing": {"fit_seconds": 1.0}, "validation": {"balanced_accuracy": v}, "dev": None}
            for label, v in scores.items()}


def test_a_tie_for_best_is_reported_as_a_tie():
    text = hyperparams.sweep_section("lr", sweep({"0.1": 0.5, "0.01": 0.5, "0.001": 0.4}), ["0.1", "0.01"], "p.png")
    assert ("**A tie for best lr**: `0.1`, `0.01` reach the same validation balanced accuracy (0.5000); "
            "the first, `0.1`, is named best.") in text
    text = hyperparams.sweep_section("lr", sweep({"0.1": 0.5, "0.01": 0.6}), ["0.01"], "p.png")
    assert "**Best lr: `0.01`** (highest validation balanced accuracy)." in text
    result = TrainResult({"loss": [1.0] * 5}, 5, None, 1.0)
    assert "**A tie for best epochs**: epochs 2, 4 reach" in hyperparams.epochs_sweep_section([2, 4], result, "p.png")
    assert "over 5 epochs, completed" in hyperparams.epochs_sweep_section([2], result, "p.png")


def test_the_loss_curves_legend_says_which_line_is_train_and_which_validation():
    fig = plots.loss_curves({"lr=0.1": ({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, None)})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["train (solid)", "validation (dashed)", "lr=0.1"]
    plt.close(fig)


def test_the_eps_axis_has_a_tick_at_every_measured_eps_and_nowhere_else():
    eps = ["0", "0.001", "0.002", "0.005", "0.01", "0.03"]
    results = {a: {e: {"accuracy": 0.5, "balanced_accuracy": 0.4} for e in eps} for a in ("fgsm", "pgd")}
    fig = plots.eps_curves(results, num_classes=3)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert list(ax.get_xticks()) == [0, 0.001, 0.002, 0.005, 0.01, 0.03]
    assert [t.get_text() for t in ax.get_xticklabels()] == eps
    assert list(ax.get_xticks(minor=True)) == []
    plt.close(fig)


def test_the_model_summary_keeps_its_param_column():
    text = report.model_summary(models.cifar_convnet())
    assert "Param #" in text and "Total params: 72,922" in text


def test_the_training_summary_names_the_epoch_kept_beside_the_last():
    history = {"loss": [1.0, 0.8, 0.7], "val_balanced_accuracy": [0.27, 0.40, 0.31]}
    text = report.training_summary(TrainResult(history, 3, None, 12.0, best_epoch=2))
    assert text == ("Completed after 3 epochs in 12.0 s. The model keeps the weights of epoch 2, of highest "
                    "validation balanced accuracy (0.4000; the last epoch's: 0.3100).")
    timing = {"feature_seconds": 540.25, "feature_cache": "miss"}
    one = report.training_summary(TrainResult({"loss": [1.0], "val_balanced_accuracy": [0.3]}, 1, None, 2.0,
                                              best_epoch=1), timing=timing)
    assert one == ("Completed after 1 epoch in 2.0 s. Before it, the frozen base's outputs for every image took "
                   "540.2 s (computed and cached). The last epoch had the highest validation balanced accuracy "
                   "(0.3000); the model keeps its weights.")


def test_the_training_curves_plot_balanced_accuracy_chance_and_the_epoch_kept():
    history = {"loss": [1.0, 0.8], "val_loss": [1.1, 0.9], "accuracy": [0.8, 0.9], "val_accuracy": [0.85, 0.88],
               "val_balanced_accuracy": [0.34, 0.5]}
    fig = plots.training_curves(history, best_epoch=1, validation="dev (observed labels)", num_classes=3)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["train accuracy", "dev (observed labels) accuracy", "dev (observed labels) balanced accuracy",
                      "chance balanced accuracy (1/3)", "weights kept (epoch 1)"]
    plt.close(fig)


def comparison_runs(weights):
    def run(acc, **extra):
        m = {s: {"accuracy": acc, "balanced_accuracy": acc} for s in ("train", "validation", "test")}
        return {**m, "training": {"status": "completed", "epochs_run": 10, "best_epoch": 7},
                "timing": {"fit_seconds": 100.0}, **extra}

    conv = run(0.7081, test_flip_tta={"accuracy": 0.7254}, test_tta_level2={"accuracy": 0.7301})
    vgg19 = {**run(0.5), "weights": weights, "timing": {"fit_seconds": 30.0, "feature_seconds": 540.0}}
    return {"runs": {"1_raw": conv, "vgg19": vgg19}}


def test_the_cifar_comparison_uses_one_number_format_and_names_the_base_weights():
    from experiments.cifar_transfer import STUDY

    text = cifar_transfer.cifar_comparison(comparison_runs("none"), STUDY)
    rows = [line for line in text.splitlines() if line.startswith("| 1_raw") or line.startswith("| vgg19")]
    assert rows[0] == "| 1_raw | 10 (kept 7) | 100 s | 70.81% | 70.81% | 70.81% | 70.81% | 72.54% | 73.01% | 70.81% |"
    assert rows[1].startswith("| vgg19 (base: random) | 10 (kept 7) | 30 s + 540 s base outputs | 50.00% |")
    assert rows[1].endswith("| 50.00% | — | — | 73.31% (first head), 77.56% (best head) |")  # no TTA figures
    assert "`vgg19`'s VGG19 base was random (--weights none); the study's VGG19 figures are with ImageNet" in text
    imagenet = cifar_transfer.cifar_comparison(comparison_runs("imagenet"), STUDY)
    assert "| vgg19 (base: ImageNet) |" in imagenet and "do not compare" not in imagenet


def test_recipes_print_as_a_table_of_the_settings_each_run_uses():
    table = report.recipes_table({"1_raw": CIFAR_CONVNET.replace(standardize=False),
                                  "3_augmented": CIFAR_CONVNET.replace(augment=CIFAR_AUGMENT),
                                  "vgg19": VGG19_HEAD.replace(weights=None)})
    lines = table.splitlines()
    assert lines[0] == ("| run | model | optimizer | learning rate | schedule | batch size | batches per call | epochs "
                        "| inputs | augmentation | dropout | VGG19 base |")
    assert lines[2] == "| 1_raw | cifar_convnet | adam | 0.001 | step | 64 | — | 140 | raw [0, 1] | — | 0.25 | — |"
    assert lines[4].endswith("| 256 | 32 | 10 | VGG19's preprocessing | — | — | none (random) |")
    assert "horizontal_flip, width_shift_range=0.125" in lines[3]


def test_flagged_captions_say_what_p_is_and_whether_the_label_is_wrong():
    from experiments.label_noise import flag_caption
    from keras_apml.dataset import Dataset, Split

    bench = Dataset({"train": Split(np.zeros((2, 1, 1, 3)), np.array([0, 0]), np.array([2, 0]))},
                    ("car", "truck", "cat"))
    probabilities = np.array([[0.03, 0.90, 0.07], [0.41, 0.59, 0.0]])
    assert flag_caption(0, bench, probabilities) == "car -> truck\np(car) = 0.03\nwrong: is cat"
    assert flag_caption(1, bench, probabilities) == "car -> truck\np(car) = 0.41\nlabel was right"
    bench = bench.replace(train=bench["train"].replace(y_true=None))
    assert flag_caption(0, bench, probabilities) == "car -> truck\np(car) = 0.03"


@pytest.mark.parametrize("k", [3, 12, 30, 50, 60])
def test_confusion_plots_stay_legible_as_the_classes_grow(k):
    names = [f"c{i:02d}" for i in range(k)]
    counts = np.full((k, k), 1)
    np.fill_diagonal(counts, 50)
    counts[k - 1, 0] = 9  # the largest confusion
    fig = plots.confusion_matrix(counts, names, "t")
    if k <= 50:
        values = [t for t in fig.axes[0].texts if t.get_text().isdigit()]
        assert len(values) == (k * k if k <= 25 else 0)  # cell values only while they fit
        assert fig.get_size_inches()[0] <= 2 * (4 + 0.22 * 50) + 1
    else:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert len(labels) == 30 and labels[-1] == f"c{k - 1:02d} -> c00"  # the largest on top
    plt.close(fig)


def test_many_classes_get_a_per_class_table_of_their_own():
    names = [f"c{i:02d}" for i in range(12)]
    metrics = {"accuracy": 0.5, "balanced_accuracy": 0.4, "macro_f1": 0.3,
               "per_class_accuracy": {c: i / 10 for i, c in enumerate(names)}}
    text = report.metrics_table({"test": metrics}, names)
    assert "| split | labels | accuracy | balanced accuracy | macro F1 |" in text
    assert "| class | test (observed) |" in text and "| c11 | 1.1000 |" in text
    few = report.metrics_table({"test": {**metrics, "per_class_accuracy": {"a": 0.5, "b": None}}}, ["a", "b"])
    assert "per-class accuracy (a / b)" in few and "| 0.500 / — |" in few
