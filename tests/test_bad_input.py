"""The boundary contract, as a table: every bad input is one ``error:`` line, exit status 2, no traceback,
and not one byte of an earlier run's directory changed.

Each row runs a real command line (in-process, as ``python -m experiments.<name>`` runs it) with ``--out``
pointing at a copy of a finished ``train`` run, and compares every file of that copy before and after.
"""

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_command, synthetic_images, write_image_tree
from test_data import png_header, write_course_pickle, write_pickled_batches

from experiments import _contract
from keras_apml import label_files
from keras_apml.cifar10 import CIFAR10_CLASSES

ROOT = Path(__file__).parents[1]


# inputs a row can name as {placeholder}
def _tree(root, classes, per_class=2):
    write_image_tree(root, per_class_train=per_class, per_class_test=1, classes=classes)
    return root


def _mixed_sizes(root):
    from PIL import Image

    for name, side in (("a", 16), ("b", 32)):
        (root / name).mkdir(parents=True)
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(root / name / "0.png")
    return root


def _bomb_tree(root):
    _tree(root, CIFAR10_CLASSES)
    (root / "train" / "cat" / "bomb.png").write_bytes(png_header(100_000, 100_000))
    return root


def _linear_model(path):
    from keras_apml import models

    models.linear(num_classes=3, input_shape=(32, 32, 3)).save(path)
    return path


def _pickles(root, name, pairs):
    root.mkdir(exist_ok=True)
    (root / f"{name}.pickle").write_bytes(pickle.dumps(pairs, protocol=2))
    return root / f"{name}.pickle"


class ObjectArray:
    """An object array over attacker bytes: numpy would read them as pointers (a segfault, or os.system)."""

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                (1, (2,), np.dtype("O"), False, b"A" * 16))


def _batches(root, batch):
    write_pickled_batches(root)
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    return root


def _text(root, name, data):
    root.mkdir(exist_ok=True)
    (root / name).write_bytes(data)
    return root / name


QUICK_DRAW = {}  # what the finished run's training images are (label_files.provenance): set by finished_run


def _relabel(root, name, rows, other_draw=False):
    """A relabel file of positions into the finished run's training images (another draw's: --seed 1's)."""
    made_from = QUICK_DRAW["seed 1" if other_draw else "seed 0"]
    return _text(root, name, f"{label_files.MADE_FROM}{json.dumps(made_from)}\nindex,label\n{rows}".encode())


def _silent_port(root):
    """HOST:PORT of a server on this machine that accepts connections and never says a word (not Dask)."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        while True:
            held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return f"127.0.0.1:{server.getsockname()[1]}"


def _fifo(root, name):
    root.mkdir(exist_ok=True)
    os.mkfifo(root / name)  # read as a file, it would wait for a writer for ever
    return root / name


IMAGE = np.zeros((3, 32, 32), np.float32)
INPUTS = {
    "tree3": lambda d: _tree(d / "tree3", CIFAR10_CLASSES[:3]),
    "tree_other10": lambda d: _tree(d / "other10", tuple(f"class{i}" for i in range(10))),
    "tree12": lambda d: _tree(d / "tree12", tuple(f"c{i:02d}" for i in range(12))),
    "tree_one_image": lambda d: _tree(d / "one", CIFAR10_CLASSES, per_class=1),
    "tree_one_class": lambda d: _tree(d / "one_class", ("only",)),
    "tree_mixed_sizes": lambda d: _mixed_sizes(d / "mixed"),
    "bomb_tree": lambda d: _bomb_tree(d / "bomb"),
    "nan_pickle": lambda d: _pickles(d / "p", "nan", [(IMAGE * np.nan, 0)] * 4),
    "fraction_pickle": lambda d: _pickles(d / "p", "fraction", [(IMAGE, 1.7)] * 4),
    "inf_pickle": lambda d: _pickles(d / "p", "inf", [(IMAGE, float("inf"))] * 4),
    "huge_pickle": lambda d: _pickles(d / "p", "huge", [(IMAGE, 2 ** 70)] * 4),
    "none_pickle": lambda d: _pickles(d / "p", "none", [(IMAGE, None)] * 4),
    "truth_outside": lambda d: _text(d / "t", "truth.csv", b"path,label\n../../outside.png,airplane\n"),
    "object_pickle": lambda d: _pickles(d / "p", "object", [(ObjectArray(), 0)]),
    "float_batches": lambda d: _batches(d / "fb", {b"data": np.full((2, 3072), 1000.0), b"labels": [0, 1]}),
    "bytes_label_batches": lambda d: _batches(d / "bb", {b"data": np.zeros((2, 3072), np.uint8),
                                                         b"labels": [b"cat", 1]}),
    "relabel_twice": lambda d: _relabel(d / "r", "twice.csv", "1,car\n1,cat\n"),
    "relabel_superscript": lambda d: _relabel(d / "r", "sup.csv", "\u00b2,car\n"),
    "relabel_latin1": lambda d: _text(d / "r", "latin.csv", "index,label\n1,caf\xe9\n".encode("latin-1")),
    "relabel_three_columns": lambda d: _relabel(d / "r", "three.csv", "1,car,sure\n"),
    "relabel_no_origin": lambda d: _text(d / "r", "plain.csv", b"index,label\n1,car\n"),
    "relabel_of_paths": lambda d: _text(d / "r", "paths.csv", b"path,label\ntrain/cat/00001.png,car\n"),
    "relabel_bom": lambda d: _text(d / "r", "bom.csv", b"\xef\xbb\xbfindex,label\n1,car\n"),
    "relabel_other_draw": lambda d: _relabel(d / "r", "other.csv", "1,car\n", other_draw=True),
    "fifo": lambda d: _fifo(d / "f", "fifo.csv"),
    "silent_port": _silent_port,
    "labels_wide": lambda d: _text(d / "l", "wide.csv", b"path,clean,human\ntrain/airplane/00000.png,airplane,bird\n"),
    "labels_unknown": lambda d: _text(d / "l", "unknown.csv", b"path,label\ntrain/airplane/00000.png,zebra\n"),
    "a_file": lambda d: _text(d / "f", "file", b"not a directory"),
    "model3": lambda d: d / "model3.keras",  # made by the module fixture below
    "linear_model": lambda d: _linear_model(d / "linear.keras"),
}

# (experiment, argv after the common flags, message): {name} is an input above, {out} the run directory copy.
ROWS = [
    # numbers in flags: NaN, infinity, out of range, unparsable, beyond int64
    ("train", ["--lr", "nan"], "argument --lr: expected a finite number, got nan"),
    ("train", ["--lr", "inf"], "argument --lr: expected a finite number, got inf"),
    ("train", ["--lr", "0"], "argument --lr: expected a number > 0, got 0"),
    ("train", ["--weight-decay", "nan"], "argument --weight-decay: expected a finite number"),
    ("train", ["--momentum", "5"], "argument --momentum: expected a number < 1, got 5"),
    ("train", ["--batch-size", "99999999999999999999"], "argument --batch-size: expected an integer in 1..1048576"),
    ("train", ["--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
    ("train", ["--seed", "-1"], "argument --seed: a seed lies in 0..4294967295, got -1"),
    ("train", ["--seed", "4294967296"], "argument --seed: a seed lies in 0..4294967295, got 4294967296"),
    ("train", ["--early-stopping", "-1"], "argument --early-stopping: expected a positive integer, got -1"),
    ("train", ["--val-split", "1"], "argument --val-split: expected a number < 1, got 1"),
    ("train", ["--val-split", "0.999"], "cannot split .* stratified"),
    ("train", ["--dropout", "1.5"], "argument --dropout: expected a number < 1, got 1.5"),
    ("train", ["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    ("train", ["--bogus"], "unrecognized arguments: --bogus"),
    # augmentation arguments, in ImageDataGenerator's units
    ("train", ["--augment", "seed=3"], "the augmentation's seed is the run's \\(--seed\\)"),
    ("train", ["--augment", "zoom_range=abc"], "zoom_range must be a finite number, got 'abc'"),
    ("train", ["--augment", "brightness_range=5"], "brightness_range is a lower:upper pair, got 5.0"),
    ("train", ["--augment", "zoom_range=1:2:3"], "zoom_range is a lower:upper pair"),
    ("train", ["--augment", "shear_range=90"], "shear_range must lie in \\[0, 90\\), got 90"),
    ("train", ["--augment", "rotation_range=inf"], "rotation_range must be a finite number, got inf"),
    ("train", ["--augment", "rotation_range=nan"], "rotation_range must be a finite number, got nan"),
    ("train", ["--augment", "contrast_range=abc"], "contrast_range must be a finite number, got 'abc'"),
    ("train", ["--augment", "horizontal_flip=false"], "the augmentation spec augments nothing"),
    ("train", ["--augment", ",,"], "the augmentation spec ',,' names no argument"),
    ("train", ["--augment", "zca_whitening"], "'zca_whitening' is an ImageDataGenerator argument this spec does not"),
    # data that is wrong, refused rather than coerced
    ("train", ["--data", "cifar10", "--data-dir", "{tree3}"],
     "has class folders airplane, automobile, bird; CIFAR-10's tree needs exactly"),
    ("train", ["--data", "cifar10", "--data-dir", "{tree_other10}"],
     "has class folders class0, .*; CIFAR-10's tree needs exactly airplane"),
    ("train", ["--data", "cifar10", "--data-dir", "{tree12}"],
     "has class folders c00, .*, c11; CIFAR-10's tree needs exactly"),
    # your own folders (train reads any tree that is not CIFAR-10's as one)
    ("train", ["--data-dir", "{tree_one_class}"], "holds 1 class folder; an image-folder dataset needs at least 2"),
    ("train", ["--data-dir", "{tree_mixed_sizes}"], "come in 2 sizes \\(16x16, 32x32, \\.\\.\\.\\): pass --image-size"),
    ("train", ["--data-dir", "{tree12}"], "cannot split 24 images stratified: The test_size = 5 should be greater or "
                                          "equal to the number of classes = 12"),
    ("train", ["--data", "cifar10", "--data-dir", "{tree_one_image}"], "cannot split 10 images"),
    ("train", ["--data", "benchmark", "--data-dir", "{bomb_tree}"],
     "bomb.png: cannot decode image .*decompression bomb"),
    ("train", ["--data-dir", "{float_batches}"], "data_batch_2: b'data' holds float64 values, expected uint8"),
    ("train", ["--data-dir", "{bytes_label_batches}"], "data_batch_2: b'labels': label \"b'cat'\" is not a whole"),
    ("train", ["--data-dir", "{a_file}"], "holds no CIFAR-10 data|does not exist"),
    ("train", ["--relabel", "{relabel_twice}"], "rows 1 and 2 both relabel index 1"),
    ("train", ["--relabel", "{relabel_superscript}"], "row 1: index '²' is not in 0"),
    ("train", ["--relabel", "{relabel_latin1}"], "is not UTF-8 text"),
    ("train", ["--relabel", "{a_file}/missing.csv"], "cannot read relabel file"),
    ("train", ["--relabel", "{relabel_three_columns}"], "three.csv: row 1 should be 'index,label'"),
    ("train", ["--relabel", "{relabel_no_origin}"], "plain.csv names images by position but does not say what data"),
    ("train", ["--relabel", "{relabel_of_paths}"],
     "paths.csv names images by path, and these training images have no files .*: it was made for image folders"),
    ("train", ["--relabel", "{relabel_bom}"], "bom.csv starts with a byte-order mark .*: save it as plain UTF-8"),
    ("train", ["--relabel", "{relabel_other_draw}"], "other.csv was made from .*, not from these training images: .* "
                                                    "its positions would name other images"),
    ("train", ["--relabel", "/dev/zero"], "relabel file /dev/zero is not a regular file"),
    ("train", ["--relabel", "{fifo}"], "relabel file .*fifo.csv is not a regular file"),
    ("baseline", ["--data-dir", "{tree3}", "--true-labels", "/dev/zero"], "truth file /dev/zero is not a regular file"),
    ("baseline", ["--data-dir", "{tree3}", "--true-labels", "{fifo}"], "truth file .*fifo.csv is not a regular file"),
    ("label_noise", ["--backbone", ""], "argument --backbone: expected a value, got an empty string"),
    ("label_noise", ["--data-dir", "{tree3}", "--labels", "{labels_wide}:worst"],
     "wide.csv has no column 'worst'; its columns: path, clean, human"),
    ("label_noise", ["--data-dir", "{tree3}", "--labels", "{labels_wide}:human"],
     "wide.csv:human has no row for 5 training image\\(s\\): 'train/airplane/00001.png', "),
    ("label_noise", ["--data-dir", "{tree3}", "--labels", "{labels_unknown}"],
     "unknown.csv: row 1: class 'zebra' is not one of airplane, automobile, bird"),
    ("imbalance", ["--data-dir", "{tree3}", "--labels", "/dev/zero"], "labels file /dev/zero is not a regular file"),
    ("baseline", ["--data", "benchmark", "--labels", "{labels_wide}:human"],
     "--labels concerns your own image folders: they need --data folder"),
    ("imbalance", ["--features", ""], "argument --features: expected a value, got an empty string"),
    ("train", ["--relabel", ""], "argument --relabel: expected a value, got an empty string"),
    ("imbalance", ["--scheduler", "{silent_port}"], "the Dask scheduler at tcp://127.0.0.1:\\d+ did not answer within "
                                                   "2 s: is a Dask scheduler listening there"),
    ("hyperparams", ["--scheduler", "{silent_port}"], "did not answer within 2 s"),
    ("cifar_transfer", ["--runs", "1", "--whiten-bias-epochs", "3"],
     "--whiten-bias-epochs concerns the airbench run, which --runs leaves out"),
    ("train", ["--classes", "cat,dog"], "--classes selects CIFAR-10 classes: it needs --data cifar10"),
    ("train", ["--data", "cifar10", "--classes", "car,truck"], "expected distinct names from"),
    ("train", ["--init", "{a_file}/missing.keras"], "--init model .*missing.keras does not exist"),
    ("train", ["--init", "{model3}", "--model", "cifar_convnet"], "differ in .*: not the same architecture"),
    ("train", ["--model", "vgg19_transfer", "--weights", "missing.h5"], "VGG19 weights file missing.h5 does not exist"),
    ("train", ["--weights", "none"], "--weights is the VGG19 base's: it needs --model vgg19_transfer"),
    # the course's pickles
    ("baseline", ["--train-pickle", "{nan_pickle}", "--dev-pickle", "{nan_pickle}"], "pixel values are NaN"),
    ("baseline", ["--train-pickle", "{fraction_pickle}", "--dev-pickle", "{fraction_pickle}"],
     "label '1.7' is not a whole number"),
    ("baseline", ["--train-pickle", "{inf_pickle}", "--dev-pickle", "{inf_pickle}"], "label 'inf' is not a whole"),
    ("baseline", ["--train-pickle", "{huge_pickle}", "--dev-pickle", "{huge_pickle}"], "is not a whole number in"),
    ("baseline", ["--train-pickle", "{none_pickle}", "--dev-pickle", "{none_pickle}"], "label 'None' is not a whole"),
    ("baseline", ["--data-dir", "{tree3}", "--true-labels", "{truth_outside}"],
     "row 1: '../../outside.png' lies outside the data tree"),
    ("baseline", ["--train-pickle", "{object_pickle}", "--dev-pickle", "{object_pickle}"], "refused dtype 'O8'"),
    ("baseline", ["--train-pickle", "{nan_pickle}"], "--train-pickle and --dev-pickle go together"),
    ("baseline", ["--epochs", "-3"], "argument --epochs: expected a positive integer, got -3"),
    # the studies' own flags
    ("imbalance", ["--seeds", "0,x"], "--seeds: expected an integer seed, got 'x'"),
    ("imbalance", ["--seeds", "1,1"], "expected distinct comma-separated seeds"),
    ("imbalance", ["--strategies", "none,smote2"], "unknown 'smote2'; --strategies takes comma-separated names"),
    ("imbalance", ["--seed", "1"], "unrecognized arguments: --seed 1"),  # it takes --seeds
    ("hyperparams", ["--sweep", "lr,colour"], "unknown 'colour'; --sweep takes comma-separated names"),
    ("hyperparams", ["--max-epochs", "0"], "argument --max-epochs: expected a positive integer, got 0"),
    ("label_noise", ["--folds", "1"], "--folds must be at least 2"),
    ("label_noise", ["--repeats", "0"], "argument --repeats: expected a positive integer, got 0"),
    ("label_noise", ["--lr", "nan"], "argument --lr: expected a finite number, got nan"),
    ("adversarial", ["--eps", "0,nan"], "argument --eps: expected a finite number, got nan"),
    ("adversarial", ["--eps", "2"], "argument --eps: expected a number <= 1, got 2"),
    ("adversarial", ["--epochs", "3"], "unrecognized arguments: --epochs 3"),
    ("adversarial", ["--model", "{model3}", "--target", "horse"], "unknown --target 'horse'; classes: car, truck, cat"),
    ("adversarial", ["--model", "{model3}", "--data", "cifar10"], "the model has 3 classes but --data cifar10 has 10"),
    ("adversarial", ["--model", "missing.keras"], "model missing.keras does not exist"),
    ("adversarial", ["--data", "folder", "--model", "{model3}"],
     "the model has 3 classes; .* has 10: airplane, .*, truck \\(a car/truck/cat model: --data benchmark draws the "
     "benchmark from this CIFAR-10 tree\\)"),
    ("cifar_transfer", ["--runs", "1,4"],
     "unknown '4'; --runs takes comma-separated names from 1, 2, 3, vgg19, airbench"),
    ("cifar_transfer", ["--dropout", "nan"], "argument --dropout: expected a finite number"),
    ("cifar_transfer", ["--runs", "1", "--fine-tune"], "--fine-tune concerns the vgg19 run, which --runs leaves out"),
    ("cifar_transfer", ["--runs", "vgg19", "--lr", "0.01", "--epochs", "3"],
     "--epochs concerns the conv net and airbench runs, which --runs leaves out"),
    ("cifar_transfer", ["--runs", "airbench", "--lr", "0.01"], "--lr concerns the conv net runs, which --runs leaves"),
    ("cifar_transfer", ["--runs", "vgg19", "--fine-tune-lr", "0.001"], "--fine-tune-lr concerns fine-tuning: add"),
    ("train", ["--momentum", "0.5"], "--momentum is SGD's: --optimizer adam has none"),
    ("cifar_transfer", ["--weights", "missing.h5"], "VGG19 weights file missing.h5 does not exist"),
    ("cifar_transfer", ["--runs", "vgg19", "--vgg19-size", "16"], "VGG19 input size must be an integer in 32..512"),
    ("cifar_transfer", ["--runs", "1", "--vgg19-size", "64"], "--vgg19-size concerns the vgg19 run, which --runs"),
    ("feature_extraction", ["--classifiers", "logreg,tree"], "unknown 'tree'; --classifiers takes"),
    ("imbalance", ["--features", "missing.keras"], "--features model missing.keras does not exist"),
    ("imbalance", ["--features", "{model3}", "--strategies", "none,augment_online"],
     "augment_online augments images: with --features choose from none, class_weight, oversample"),
    ("label_noise", ["--features", "{model3}", "--model", "cifar_convnet"],
     "--model concerns a network trained on the images; with --features or --backbone a softmax head trains"),
    ("label_noise", ["--backbone", "NoSuchNet"], "unknown backbone 'NoSuchNet': a keras.applications model"),
    ("imbalance", ["--backbone", "MobileNetV3Small", "--weights", "missing.weights.h5"],
     "backbone weights file missing.weights.h5 does not exist"),
    ("label_noise", ["--backbone", "MobileNetV3Small", "--weights", "{model3}"],
     "backbone weights file .*model3.keras: expected an .h5 file"),
    ("imbalance", ["--weights", "none"], "--weights concerns --backbone, which is not given"),
    ("label_noise", ["--feature-layers", "features"], "--feature-layers concerns --features, which is not given"),
    ("label_noise", ["--detector", "both"],
     "--detector both fine-tunes the model of --features MODEL on the images, which is not given"),
    ("label_noise", ["--backbone", "VGG19", "--detector", "fine-tune"], "\\(a --backbone is not fine-tuned\\)"),
    ("label_noise", ["--features", "{linear_model}", "--detector", "both"],
     "--detector both fine-tunes --features .*linear.keras on the images, but it is a 'linear', not one of"),
    ("label_noise", ["--features", "{model3}", "--feature-layers", "conv1,nope"],
     "model .* has no layer 'nope'; layers: "),
    ("label_noise", ["--features", "{model3}", "--feature-layers", "conv1,,conv2"],
     "argument --feature-layers: expected comma-separated layer names, each once"),
    ("label_noise", ["--backbone", "VGG19", "--features", "{model3}"], "argument --features: not allowed with"),
    ("label_noise", ["--backbone", "VGG19", "--backbone-size", "16"], "backbone input size 16: expected 32 to 1024"),
    ("label_noise", ["--features", "{model3}", "--strategy", "flip+class_weight"],
     "--strategy flip\\+class_weight augments images: with --features choose one without augmentation"),
    ("imbalance", ["--features", "{model3}", "--init", "{model3}"], "--init concerns a network trained on the images"),
    ("train", ["--model", "airbench", "--dropout", "0.2"], "airbench has no dropout"),
    ("train", ["--augment", "alternating_flip", "--balance", "oversample"],
     "alternating_flip mirrors whole epochs of images held in memory: not with --balance oversample"),
    ("train", ["--whiten-bias-epochs", "3"], "only airbench has a whitening layer whose bias could train"),
    ("train", ["--model", "airbench", "--steps-per-execution", "4"], "the lookahead averages the weights every 5"),
    ("train", ["--model", "linear"], "argument --model: invalid choice: 'linear'"),
    ("train", ["--label-smoothing", "1"], "argument --label-smoothing: expected a number < 1, got 1"),
    ("train", ["--ema", "0"], "argument --ema: expected a number > 0, got 0"),
    ("feature_extraction", ["--pca", "0"], "argument --pca: expected a positive integer, got 0"),
    ("feature_extraction", ["--model", "{model3}"],
     "has 3 classes; these features are scored on 10: airplane, automobile"),
    # the run directory itself
    ("train", ["--lr", "0.01"], "holds a run with other settings \\(--lr 0.001 there, 0.01 now\\)"),
    ("imbalance", [], "holds a run of experiment 'train'; give another --out"),
]


@pytest.fixture(scope="module")
def finished_run(image_tree, tmp_path_factory):
    """A finished ``train --quick`` run directory (copied for each row) and a three-class model file."""
    from keras_apml import models

    from experiments import _data, train

    root = tmp_path_factory.mktemp("finished")
    out = root / "run"
    quick = ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--quick"]
    assert run_command("train", [*quick, "--out", str(out), "--quiet"]) == 0
    for seed in (0, 1):  # the quick draw's training images, as train --relabel sees them
        drawn = _data.load(train.parse_args([*quick, "--seed", str(seed)]), "benchmark", seed=seed)
        QUICK_DRAW[f"seed {seed}"] = _data.positions_made_from(drawn, ["train"])
    models.small_cnn(num_classes=3).save(root / "model3.keras")
    return out, root / "model3.keras"


def snapshot(directory):
    """Every file under ``directory`` with its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def run_row(image_tree, finished_run, tmp_path, name, argv, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished_run[0], out)
    before = snapshot(out)
    values = {"out": str(out)}
    for key, make in INPUTS.items():
        if any(f"{{{key}}}" in a for a in argv):
            values[key] = str(finished_run[1] if key == "model3" else make(tmp_path))
    argv = [a.format(**values) for a in argv]
    common = ["--out", str(out), "--quick", "--quiet"]
    if "--data-dir" not in argv and not any(a.startswith("--train-pickle") for a in argv):
        common += ["--data-dir", str(image_tree[0])]  # a tree named as CIFAR-10's: read as the row's study reads it
        if "--data" not in argv and name != "cifar_transfer":
            common += ["--data", "cifar10" if name == "feature_extraction" else "benchmark"]
    capsys.readouterr()
    status = run_command(name, [*common, *argv])
    return status, capsys.readouterr(), before, snapshot(out)


@pytest.mark.slow
@pytest.mark.parametrize("name, argv, message", ROWS, ids=[f"{r[0]}:{' '.join(r[1]) or 'none'}" for r in ROWS])
def test_bad_input_is_one_error_line_and_changes_nothing(image_tree, finished_run, tmp_path, capsys, monkeypatch,
                                                         name, argv, message):
    import re

    from keras_apml import cluster

    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 2)  # a scheduler that does not answer: said in seconds
    status, captured, before, after = run_row(image_tree, finished_run, tmp_path, name, argv, capsys)
    err = captured.err.splitlines()
    assert status == 2, captured
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err[0]
    assert "Traceback" not in captured.err + captured.out
    assert after == before


@pytest.mark.slow
def test_a_second_process_on_the_same_out_is_refused(image_tree, finished_run, tmp_path, capsys):
    from experiments._rundir import RunDir

    out = tmp_path / "out"
    shutil.copytree(finished_run[0], out)
    (out / "metrics.json").write_text(json.dumps({k: v for k, v in json.loads(
        (out / "metrics.json").read_text()).items() if k != "finished"}))  # an unfinished run, to be resumed
    before = snapshot(out)
    held = RunDir.open("train", out, json.loads((out / "config.json").read_text())["arguments"])
    try:
        status = run_command("train", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(out),
                                       "--quick", "--quiet"])
    finally:
        held.close()
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: another process is writing run directory")
    assert snapshot(out) == before


@pytest.mark.slow
def test_a_full_disk_is_one_error_line_and_leaves_the_earlier_files_whole(image_tree, finished_run, tmp_path,
                                                                          monkeypatch, capsys):
    import tempfile

    out = tmp_path / "out"
    shutil.copytree(finished_run[0], out)
    metrics = json.loads((out / "metrics.json").read_text())
    del metrics["finished"]  # interrupted: the same command resumes it and writes
    (out / "metrics.json").write_text(json.dumps(metrics))
    before = snapshot(out)

    real_mkstemp = tempfile.mkstemp

    def disk_full(*args, **kwargs):  # the run directory's disk is full (the cache's is not)
        if Path(kwargs.get("dir", "")) == out:
            raise OSError(errno.ENOSPC, "No space left on device", kwargs.get("dir"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", disk_full)
    status = run_command("train", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(out),
                                   "--quick", "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1
    assert err[0] == f"error: No space left on device ({out}); files written before are intact"
    assert snapshot(out) == before


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_status_130(image_tree, tmp_path, monkeypatch, capsys):
    from keras_apml import trainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "fit_dataset", interrupted)
    status = run_command("train", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out",
                                   str(tmp_path / "run"), "--quick"])
    err = capsys.readouterr().err.splitlines()
    assert status == 130 and err == ["error: interrupted; run the same command again to resume"]


@pytest.mark.slow
def test_kill_is_one_line_status_143_and_the_run_resumes(image_tree, tmp_path, monkeypatch, capsys):
    import os
    import signal

    from keras_apml import trainer

    real_fit, calls = trainer.fit_dataset, []

    def killed_in_epoch_2(model, data, **kwargs):
        class Kill(__import__("keras").callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1 and not calls:
                    calls.append(epoch)
                    os.kill(os.getpid(), signal.SIGTERM)

        return real_fit(model, data, **{**kwargs, "callbacks": [*kwargs["callbacks"], Kill()]})

    monkeypatch.setattr(trainer, "fit_dataset", killed_in_epoch_2)
    argv = ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(tmp_path / "run"), "--quick",
            "--epochs", "3"]
    assert run_command("train", argv) == 143
    assert capsys.readouterr().err.splitlines() == [
        "error: stopped by a signal (SIGTERM); run the same command again to resume"]
    assert signal.getsignal(signal.SIGTERM) is not _contract._terminate  # the command's handler is gone with it
    assert run_command("train", argv) == 0
    assert "training: resuming from its backup after epoch 2" in capsys.readouterr().out


@pytest.mark.slow
def test_the_real_command_line_refuses_an_object_array_pickle_without_a_signal(tmp_path):
    """The segfault case, through ``python -m``: one line, status 2, no traceback."""
    path = _pickles(tmp_path, "object", [(ObjectArray(), 0)])
    done = subprocess.run([sys.executable, "-m", "experiments.baseline", "--train-pickle", str(path), "--dev-pickle",
                           str(path), "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: {path}: unsafe or corrupt pickle (refused dtype 'O8': data files "
                                        "may hold only bool, integer or float arrays)"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_help_states_defaults_and_never_imports_tensorflow():
    script = ("import sys, contextlib, io\n"
              "from experiments import train\n"
              "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
              "    train.parse_args(['--help'])\n"
              "print('tensorflow' in sys.modules, '(default: 0.001)' in out.getvalue())\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "True"], done.stderr


@pytest.mark.slow
def test_course_pickles_with_too_few_images_for_a_class_are_refused(tmp_path, capsys):
    x = synthetic_images(3, seed=0)
    write_course_pickle(tmp_path / "train.pickle", x, [0, 0, 1])  # no cat at all
    write_course_pickle(tmp_path / "dev.pickle", x, [0, 1, 2])
    status = run_command("label_noise", ["--train-pickle", str(tmp_path / "train.pickle"), "--dev-pickle",
                                         str(tmp_path / "dev.pickle"), "--out", str(tmp_path / "run"), "--quick",
                                         "--quiet", "--model", "small_cnn"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and err == ["error: class 2 has 0 training images, fewer than 5 folds"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_model_for_other_inputs_is_refused_before_the_run_opens(image_tree, tmp_path, capsys):
    import keras

    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))).save(
        tmp_path / "mnist.keras")
    status = run_command("adversarial", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--model",
                                         str(tmp_path / "mnist.keras"),
                                         "--out", str(tmp_path / "run"), "--quick", "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and err == [f"error: model {tmp_path / 'mnist.keras'} takes inputs of shape "
                                   "(None, 28, 28, 1), not 32x32 RGB images (32, 32, 3)"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_init_model_of_another_architecture_fails_a_study_before_its_run_opens(image_tree, finished_run,
                                                                                  tmp_path, capsys):
    status = run_command("imbalance", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--init",
                                       str(finished_run[1]),
                                       "--model", "cifar_convnet", "--out", str(tmp_path / "run"), "--quick"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1 and "not the same architecture" in err[0]
    assert not (tmp_path / "run").exists()


def _command(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "experiments.train", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_a_file_size_limit_met_by_the_backup_is_one_line_and_status_2(image_tree, tmp_path):
    """ulimit -f: the backup's write fails with EFBIG; HDF5 never holds the file, so no crash at exit and no
    second line of its text."""
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))  # bytes: less than a backup of small_cnn

    done = _command("--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(tmp_path / "run"),
                    "--quick", "--quiet", "--no-cache", preexec_fn=limited)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: File too large (") and "epoch-000001.weights.h5); files written before are intact" \
        in err


@pytest.mark.slow
def test_a_kill_ends_the_command_right_after_its_one_line(image_tree, tmp_path):
    import signal

    done = _command("--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(tmp_path / "run"),
                    "--quick", "--epochs", "1000")
    for line in done.stdout:  # redirected: a plain line after each epoch
        if ": epoch 1/1000 (" in line:
            break
    done.send_signal(signal.SIGTERM)
    _, err = done.communicate(timeout=60)
    assert done.returncode == 143
    assert err.splitlines() == ["error: stopped by a signal (SIGTERM); run the same command again to resume"]
