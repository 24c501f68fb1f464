"""A study's data from its flags: the car/truck/cat benchmark, CIFAR-10, your own image folders, a model's features."""

import dataclasses
import os
from pathlib import Path

import numpy as np

from experiments import _flags, _output
from keras_apml import benchmark, cache, cifar10, folders, label_files
from keras_apml.errors import InputError


def use_cache(args):
    """Read and write the cache of decoded images and model outputs unless ``--no-cache``: for the whole command,
    as the library reads it (every loader here calls this first)."""
    cache.set_enabled(not getattr(args, "no_cache", False))


def with_features(args, bench, mirror=True):
    """The benchmark with its images replaced by the features of ``--features``'s penultimate layer or
    ``--backbone``'s pooled output (``mirror``: each image's averaged with its mirror image's), computed once and
    cached; returns ``(bench, info)`` with the model, its weights' hash, the feature size and the cache's record."""
    from keras_apml import backbones, features, models  # here, not at the top: they import TensorFlow, --help not

    use_cache(args)
    shape = tuple(bench["dev"].x.shape[1:])
    if args.backbone:
        weights = {None: "imagenet", "none": None}.get(args.weights, args.weights)
        extractor = backbones.backbone(args.backbone, weights, args.backbone_size, input_shape=shape)
        if weights == "imagenet":
            digest, whose = "imagenet", "ImageNet weights"
        elif weights is None:
            digest, whose = features.weights_sha256(extractor), "RANDOM weights"
        else:
            digest, whose = features.file_sha256(weights), Path(weights).name
        size = extractor.get_layer("resize").output.shape[1]
        described = f"{args.backbone} ({whose}), pooled, images resized to {size}x{size}"
        key, source = f"{args.backbone}:{digest}:{size}:pooled", {"backbone": args.backbone, "weights": weights,
                                                                  "input_size": size}
    else:
        if not Path(args.features).is_file():
            raise InputError(f"--features model {args.features} does not exist")
        model = models.load_model(args.features)
        taken = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
        if taken != shape:
            raise InputError(f"--features model {args.features} takes inputs of shape {taken}, not these "
                             f"{'x'.join(map(str, shape))} images")
        chosen = args.feature_layers
        extractor = models.pooled_features(model, chosen) if chosen else models.feature_extractor(model)
        digest = features.file_sha256(args.features)
        described = (f"layers {', '.join(chosen)} of {args.features}, pooled" if chosen else
                     f"layer {extractor.layers[-1].name} of {args.features}")
        key = f"{digest}:{'pooled:' + ','.join(chosen) if chosen else 'penultimate'}"
        source = {"model": str(Path(args.features).resolve()), "layers": chosen}
    _output.say(args, f"features: {described}, for every image{' and its mirror image' if mirror else ''} (cached)")
    out, info = features.cached_outputs(
        extractor, {"train": bench["train"].x, "dev": bench["dev"].x}, key=key,
        about=f"features of {described} ({digest[:12]}){', mirror-averaged' * mirror}, on {len(bench['train'])} "
              f"train and {len(bench['dev'])} dev images", verbose=_output.verbosity(args), mirror=mirror)
    info.update(source, sha256=digest, size=int(out["train"].shape[1]), mirror_averaged=mirror)
    return bench.replace(**{name: bench[name].replace(x=out[name].astype(np.float32)) for name in out}), info


def load(args, kind, *, seed=0, validation=0.0, streams=False):
    """The study's data from its flags, as one :class:`~keras_apml.dataset.Dataset`.

    ``kind`` is "cifar10", "folder" (your own image folders at --data-dir, as
    they are split) or "benchmark": the car/truck/cat benchmark drawn with
    ``seed`` (--quick: drawn at 1/20 of its size), the course's pickles, or
    your own folders standing in for it (train with val/ joined, and test,
    called "dev"). Then, in this order: the --classes chosen and --relabel's
    corrections applied (where the study has those flags), the one stratified
    --quick subset (``seed``), and ``validation`` (a fraction) of the training
    images split off (``seed``) where the data has no validation split.
    ``streams``: a study that can stream images past --memory-budget.
    """
    use_cache(args)
    drawn_small = False  # the benchmark drawn from CIFAR-10 at its --quick size
    if kind == "folder":
        data = load_folder(args, validation, seed, streams)
    elif kind == "benchmark" and data_kind(args) == "folder":
        data = load_folder(args, 0.0, seed, streams).train_and_test("dev")
    else:
        if any(_flags.given_folder_flags(args)):
            raise InputError(f"{', '.join(_flags.given_folder_flags(args))} concern your own image folders; "
                             f"--data-dir {args.data_dir or '(none)'} is not such a tree")
        if kind == "cifar10":
            data = cifar10.dataset(args.data_dir, verbose=_output.verbosity(args))
        else:
            pickles = getattr(args, "train_pickle", None), getattr(args, "dev_pickle", None)  # the studies' flags
            data = benchmark.load_benchmark(args.data_dir, seed, *pickles, quick=args.quick,
                                            verbose=_output.verbosity(args))
            drawn_small = pickles[0] is None
    if getattr(args, "classes", None) is not None:
        data = data.only_classes([c.strip() for c in args.classes.split(",") if c.strip()])
    if getattr(args, "relabel", None):
        data = relabelled(data, args.relabel, seed=seed, subset="quick" if drawn_small else "all")
    if args.quick and not drawn_small:
        data = data.quick(_flags.QUICK_TRAIN, _flags.QUICK_TEST, seed)
    return data.with_validation(validation, seed) if validation else data


def positions_made_from(data, parts, **about):
    """What positions into the splits ``parts`` of ``data`` (joined in that order) are positions in: their labels
    and source indices, the data in words and ``about`` it (how it was drawn), as a file of positions records it
    (``label_files.provenance``)."""
    splits = [data[name] for name in parts]
    index = None if any(s.index is None for s in splits) else np.concatenate([s.index for s in splits])
    return label_files.provenance(np.concatenate([s.y for s in splits]), index, data=data.source,
                                  split="+".join(parts), **about)


def relabelled(data, path, **about):
    """``data`` with a relabel file's corrections applied to its training images (and validation images, where
    they are split already): rows name images by index into train, or by path where the images have files; the
    images labelled ``drop`` are left out. A file of positions made from other data (``about``: how this was
    drawn) is refused."""
    parts = [name for name in ("train", "validation") if name in data.splits]
    paths = data["train"].paths and [p for name in parts for p in data[name].paths]
    y, record = label_files.apply_relabel_file(np.concatenate([data[name].y for name in parts]), path,
                                               data.class_names, paths=paths,
                                               made_from=positions_made_from(data, parts, **about))
    bounds = np.cumsum([len(data[name]) for name in parts])[:-1]
    splits = {}
    for name, part in zip(parts, np.split(y, bounds)):
        kept = np.flatnonzero(part != label_files.DROPPED)
        if not len(kept):
            raise InputError(f"{path} drops every image of {name}: nothing is left to train on")
        splits[name] = data[name].replace(y=part).take(kept) if len(kept) < len(part) else data[name].replace(y=part)
    return dataclasses.replace(data.replace(**splits), notes={**data.notes, "relabel": record})


def load_folder(args, val_fraction, seed, streams=False):
    """Your own image folders (``folders.load`` with the flags, split with ``seed``, with --true-labels' truth);
    ``streams``: a study that can stream images past --memory-budget from their files."""
    root = args.data_dir or os.environ.get(cifar10.DATA_ENV)
    if not root:
        raise InputError("your own image folders need --data-dir ROOT")
    budget = None
    if not streams and getattr(args, "memory_budget", None) is not None:
        raise InputError("--memory-budget: this study holds its images in memory; train, feature_extraction and "
                         "label_noise stream theirs")
    if streams:
        budget = args.memory_budget * 1e6 if args.memory_budget else os.sysconf("SC_PAGE_SIZE") * os.sysconf(
            "SC_PHYS_PAGES") / 4
    data = folders.load(root, args.image_size, val_fraction=val_fraction, test_fraction=args.test_fraction,
                        seed=seed, skip_unreadable=args.skip_unreadable, verbose=_output.verbosity(args),
                        memory_budget=budget, truth=args.true_labels, labels=args.labels)
    if data.streamed:
        _output.say(args, f"the images would take more than {budget / 1e6:.0f} MB decoded: streaming them from "
                          "their files")
    if data.skipped:
        _output.say(args, f"note: {len(data.skipped)} unreadable file(s) left out (--skip-unreadable), e.g. "
                    f"{data.skipped[0][0]} ({data.skipped[0][1]})")
    return data


def data_kind(args):
    """The study's data: --data where given; else "folder" when --data-dir (or $KERAS_APML_DATA) is a tree of image
    folders, whatever their class names (your data, even when its classes are named as CIFAR-10's), else
    "benchmark" (drawn from CIFAR-10: its download, or its pickled batches at --data-dir)."""
    if getattr(args, "data", None):
        return args.data
    where = args.data_dir or os.environ.get(cifar10.DATA_ENV)
    root = Path(where).expanduser() if where else None
    if getattr(args, "train_pickle", None) or root is None or not root.is_dir() or cifar10.has_pickled_batches(root):
        return "benchmark"
    return "folder" if any(p.is_dir() for p in root.iterdir()) else "benchmark"  # no subfolders: neither


def choose_data(p, args):
    """Resolve --data once, as the flags are parsed (:func:`data_kind`), and refuse the flags that do not concern
    it: image-folder flags without your own folders, the course's pickles but for the benchmark."""
    args.data = data_kind(args)
    if args.data != "folder":
        _flags.refuse_folder_flags(p, args)
    if (getattr(args, "train_pickle", None) or getattr(args, "dev_pickle", None)) and args.data != "benchmark":
        p.error("--train-pickle and --dev-pickle replace the benchmark: they need --data benchmark")
    return args
