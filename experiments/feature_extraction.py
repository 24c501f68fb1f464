"""Hand a trained network's penultimate-layer features to scikit-learn classifiers.

    python -m experiments.feature_extraction --data-dir /tmp/data/cifar10-jpeg
    python -m experiments.feature_extraction --model runs/cifar_transfer/RUN --scale --pca 128 --svm exact

Features of all CIFAR-10 train and test images are extracted in batches and
cached (keyed by the model file's hash and the layer); logistic regression,
a random forest, KNN and an SVM are each fitted inside a scikit-learn
Pipeline, and compared with the network's own test accuracy.
"""

import time
import warnings
from pathlib import Path

import numpy as np
import sklearn

from experiments import _contract, _data, _flags, _output
from keras_apml import progress, report
from keras_apml.errors import InputError

CLASSIFIERS = ("logreg", "random_forest", "knn", "svm")
SVMS = ("nystroem", "linear", "exact")
MAKE_MODEL = "python -m experiments.cifar_transfer --runs vgg19"
# The defaults the flags do not state themselves, then what --quick changes.
DEFAULTS = {"max_iter": 2000}  # logistic regression's iterations
QUICK = {"max_iter": 100}


def parse_args(argv=None):
    """The command line of this experiment."""
    p = _flags.parser("feature_extraction", __doc__.splitlines()[0])
    _flags.add_seed(p, "seed of the classifiers and the train-accuracy sample")
    p.add_argument("--batch-size", type=_flags.positive_int(2 ** 20), default=256,
                   help="batch size of the feature extraction")
    p.add_argument("--model", default=None,
                   help="a .keras file, or a cifar_transfer run directory (its vgg19.keras); "
                        "default: the newest cifar_transfer run under runs/")
    p.add_argument("--layer", default=None,
                   help="layer to take features from (default: the penultimate, the transfer head's "
                        "512-unit layer, bn2)")
    p.add_argument("--classifiers", type=_flags.names_list(CLASSIFIERS, "--classifiers"), default=list(CLASSIFIERS),
                   help=f"comma-separated subset of {', '.join(CLASSIFIERS)} (default: all)")
    p.add_argument("--scale", action="store_true", help="put a StandardScaler first in every pipeline")
    p.add_argument("--pca", type=_flags.positive_int(100_000), default=None, metavar="N",
                   help="then PCA to N components (default: off)")
    p.add_argument("--svm", choices=SVMS, default="nystroem",
                   help="nystroem: RBF kernel approximated with Nystroem, then a linear SVM trained by "
                        "averaged SGD (default, seconds); linear: LinearSVC; exact: sklearn.svm.SVC "
                        "(hours on 50,000 images)")
    p.add_argument("--max-iter", type=_flags.positive_int(10 ** 6), default=None,
                   help=f"logistic regression iterations (default: {DEFAULTS['max_iter']}; --quick: "
                        f"{QUICK['max_iter']})")
    p.add_argument("--train-eval-size", type=_flags.positive_int(10 ** 7), default=10000,
                   help="train accuracy is measured on a stratified sample of this many images "
                        "(KNN on all 50,000 would dominate the run)")
    p.add_argument("--data", choices=("cifar10", "folder"), default=None,
                   help="CIFAR-10, or your own image folders at --data-dir (train and test splits) (default: folder "
                        "when --data-dir is a tree of image folders, whatever their class names, else cifar10)")
    _flags.add_image_folder(p)
    args = p.parse_args(argv)
    args.data = args.data or ("folder" if _data.data_kind(args) == "folder" else "cifar10")
    if args.data != "folder":
        _flags.refuse_folder_flags(p, args)
    return _flags.resolve_defaults(args, DEFAULTS, (args.quick, QUICK))


def load_images(args, model, model_path):
    """The train and test splits of CIFAR-10, or of your own folders at the model's size."""
    from keras_apml import models

    if args.data == "cifar10":
        models.check_input_shape(model, model_path)
    else:
        size = tuple(model.input_shape[1:3])
        args.image_size = args.image_size or size
        if tuple(args.image_size) != size:
            raise InputError(f"model {model_path} takes {size[0]}x{size[1]} images, not --image-size "
                             f"{args.image_size[0]}x{args.image_size[1]}")
    data = _data.load(args, args.data, streams=True).train_and_test()  # drawn with seed 0, as every study's
    names = data.class_names
    if int(model.output_shape[-1]) != len(names):
        raise InputError(f"model {model_path} has {model.output_shape[-1]} classes; these features are scored on "
                         f"{len(names)}: {', '.join(names)}")
    return data


def resolve_model(path):
    """The .keras file to use: the given file, a run directory's vgg19.keras, or the newest run's."""
    if path is None:
        return _output.newest(["cifar_transfer/*/vgg19.keras"], f"`{MAKE_MODEL}`")
    path = Path(path)
    if path.is_dir():
        if not (path / "vgg19.keras").is_file():
            raise InputError(f"{path} holds no vgg19.keras; make one with `{MAKE_MODEL} --out {path}` "
                             "or pass a .keras file")
        return path / "vgg19.keras"
    if not path.is_file():
        raise InputError(f"model {path} does not exist; make one with `{MAKE_MODEL}`")
    return path


def make_classifier(name, args):
    """A scikit-learn Pipeline: optional StandardScaler and PCA, then the classifier."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    estimators = {
        "logreg": lambda: LogisticRegression(max_iter=args.max_iter),
        "random_forest": lambda: RandomForestClassifier(n_estimators=50, max_depth=6, criterion="entropy",
                                                        min_samples_leaf=3, n_jobs=-1, random_state=args.seed),
        "knn": lambda: KNeighborsClassifier(n_neighbors=5, n_jobs=-1),
        # SVMs standardise their input themselves: the RBF kernel's gamma assumes unit variance.
        "svm": {
            # a linear SVM (hinge loss, averaged SGD) on a 1000-component Nystroem map of the RBF kernel
            "nystroem": lambda: make_pipeline(
                StandardScaler(), Nystroem(n_components=1000, random_state=args.seed),
                SGDClassifier(loss="hinge", average=True, n_jobs=-1, random_state=args.seed)),
            "linear": lambda: make_pipeline(StandardScaler(), LinearSVC(random_state=args.seed)),
            "exact": lambda: make_pipeline(StandardScaler(), SVC()),
        }[args.svm],
    }
    steps = [("scale", StandardScaler())] if args.scale else []
    if args.pca:
        from sklearn.decomposition import PCA

        steps.append(("pca", PCA(n_components=args.pca, random_state=args.seed)))
    return Pipeline(steps + [(name, estimators[name]())])


def fit_and_score(name, pipeline, features, labels, class_names, train_eval):
    """Fit one classifier, time fit and predict, and evaluate; warnings (non-convergence) are kept."""
    from sklearn.exceptions import ConvergenceWarning

    from keras_apml import evaluation

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        pipeline.fit(features["train"], labels["train"])
        fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    test_pred = pipeline.predict(features["test"])
    predict_seconds = time.perf_counter() - start
    train_pred = pipeline.predict(features["train"][train_eval])
    notes = sorted({str(w.message).splitlines()[0] for w in caught if issubclass(w.category, ConvergenceWarning)})
    return {
        "train": evaluation.evaluate(train_pred, None, labels["train"][train_eval], class_names),
        "test": evaluation.evaluate(test_pred, None, labels["test"], class_names),
        "timing": {"fit_seconds": round(fit_seconds, 3), "predict_seconds": round(predict_seconds, 3)},
        "converged": not notes,
        "warnings": notes,
        "pipeline": describe(pipeline, settings=True),
    }


def describe(pipeline, settings=False):
    """A one-line description of a (nested) scikit-learn Pipeline: its steps' names, or with ``settings`` each
    step as scikit-learn writes it, with the parameters set away from their defaults."""
    from sklearn.pipeline import Pipeline

    return " -> ".join(describe(step, settings) if isinstance(step, Pipeline)
                       else " ".join(repr(step).split()) if settings else type(step).__name__
                       for _, step in pipeline.steps)


def features_section(model_path, layer, shapes, cache, train_eval):
    """``experiments.feature_extraction``: where the features come from."""
    return (f"Model `{model_path}`, layer `{layer}`: features {shapes[0]} train, {shapes[1]} test (cache "
            f"{cache['cache']}, {cache['seconds']:.1f} s). Train accuracy is measured on {train_eval} training images.")


def classifier_section(name, result, confusion_png):
    """``experiments.feature_extraction``: one scikit-learn classifier's pipeline, convergence and test report."""
    warning = f"\n\n**Did not converge**: {'; '.join(result['warnings'])}" if result["warnings"] else ""
    return (f"## {name}\n\n`{result['pipeline']}`\n\n(Every parameter not written out is scikit-learn "
            f"{sklearn.__version__}'s default.){warning}\n\n![confusion matrix]({confusion_png})\n\n"
            f"```\n{result['test']['classification_report']}```")


def classifier_comparison(rows):
    """``experiments.feature_extraction``: every classifier beside the network's own softmax."""
    return "## Comparison\n\n" + report.markdown_table(
        ["classifier", "train acc", "test acc", "test balanced acc", "fit s", "predict s"], rows)


def main(argv=None):
    args = parse_args(argv)

    import keras

    from keras_apml import evaluation, features, models, plots, stratified

    model_path = resolve_model(args.model)
    model = models.load_model(model_path)
    layer = models.feature_extractor(model, args.layer).layers[-1].name
    data = load_images(args, model, model_path)
    names, train, test = data.class_names, data["train"], data["test"]
    run = _output.open_run("feature_extraction", args, model_file=str(model_path.resolve()), layer=layer)

    extractor = keras.Model(model.inputs, {"features": model.get_layer(layer).output, "probabilities": model.output})
    _output.say(args, f"computing layer {layer}'s features and the model's probabilities for every image once")
    outputs, cache = features.cached_outputs(
        extractor, {"train": train.x, "test": test.x}, key=f"{features.file_sha256(model_path)}:{layer}",
        about=f"layer {layer} features and probabilities of {model_path.resolve()} on "
              f"{'CIFAR-10' if args.data == 'cifar10' else args.data_dir} "
              f"({len(train)} train, {len(test)} test images)",
        batch_size=args.batch_size, verbose=_output.verbosity(args))
    feats = {split: outputs[f"{split}.features"].reshape(len(outputs[f"{split}.features"]), -1)
             for split in ("train", "test")}
    labels = {"train": train.y, "test": test.y}
    train_eval = np.arange(len(train))
    if args.train_eval_size < len(train):
        train_eval = np.sort(stratified.validation_split(train.y, args.train_eval_size, args.seed)[1])
    network = evaluation.evaluate(outputs["test.probabilities"], None, test.y, names)
    run.record("network", {"test": network, "timing": {"extract_seconds": cache["seconds"]},
                           "feature_cache": cache["cache"]})
    run.add_section("features", features_section(model_path, layer, (feats["train"].shape, feats["test"].shape),
                                                 cache, len(train_eval)))

    rows = [("network (softmax)", None, network["accuracy"], network["balanced_accuracy"], None, None)]
    step = progress.StudyProgress(len(args.classifiers), args.quiet)
    for name in args.classifiers:
        pipeline = make_classifier(name, args)
        step(f"{name}: {describe(pipeline)}")
        result = fit_and_score(name, pipeline, feats, labels, names, train_eval)
        run.record(name, result)
        for note in result["warnings"]:
            print(f"note: {name} did not converge: {note}", flush=True)
        test = result["test"]
        rows.append((name, result["train"]["accuracy"], test["accuracy"], test["balanced_accuracy"],
                     f"{result['timing']['fit_seconds']:.2f}", f"{result['timing']['predict_seconds']:.2f}"))
        png = run.save_figure(plots.confusion_matrix(test["confusion_matrix"], names, f"{name} on {layer} features"),
                              f"confusion_{name}.png")
        run.add_section(name, classifier_section(name, result, png))
    run.add_section("comparison", classifier_comparison(rows))
    return _output.finish(run, args)


if __name__ == "__main__":
    _contract.run(main)
