"""Any image-folder dataset, decoded into arrays: class names from the folder names, any number of classes.

Two layouts, as Keras's ``image_dataset_from_directory`` users keep them:

- ``ROOT/train/<class>/*`` with optional ``ROOT/val/<class>/*`` and
  ``ROOT/test/<class>/*``: the splits as given, validation images split off
  train (stratified, seeded) where there is no val/;
- ``ROOT/<class>/*``: train, validation and test split here, stratified and
  seeded (:data:`TEST_FRACTION` of the images for test, then
  :data:`VAL_FRACTION` of the rest for validation, by default).

JPEG, PNG, BMP, GIF (its first frame) and WebP files are read with Pillow,
turned upright by their EXIF orientation and converted to RGB uint8:
grayscale and palette images are expanded, 16-bit images scaled to 8 bits,
CMYK converted, and an alpha channel dropped (the colour channels are kept
as stored, as ``tf.io.decode_image(channels=3)`` does). Images of another
size are resized with Lanczos filtering (antialiased), without keeping the
aspect ratio. A file that cannot be decoded is an error naming it, or with
``skip_unreadable`` is left out and listed. The arrays are cached like
CIFAR-10's (:mod:`keras_apml.cache`); past a memory budget the images stay
in their files instead (:class:`FileImages`) and are streamed.
"""

import hashlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from sklearn.model_selection import train_test_split

from keras_apml import cache
from keras_apml.dataset import Dataset, Split
from keras_apml.errors import InputError
from keras_apml.image_files import IMAGE_EXTENSIONS, is_hidden, is_image_file
from keras_apml.label_files import read_labels
from keras_apml.progress import StepProgress

SPLIT_FOLDERS = ("train", "val", "test")
SPLIT_NAMES = dict(zip(SPLIT_FOLDERS, ("train", "validation", "test")))  # the folder val/ holds the validation split
VAL_FRACTION, TEST_FRACTION = 0.2, 0.2  # as experiments.train's --val-split and the studies' test split
MAX_SIDE = 4096  # larger images are refused from their header, before a pixel is decoded (decompression bombs)


class FileImages:
    """Images left in their files, for datasets larger than memory: an array-like of uint8 RGB images of one
    ``size``, indexed by image subsets (slices, index arrays, masks) without reading a pixel; one image (an
    integer index) is decoded on the spot, and tf.data streams them all (:mod:`keras_apml.pipeline`)."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, root, paths, size):
        self.root, self.paths, self.size = Path(root), np.asarray(paths, dtype=str), tuple(size)

    def __len__(self):
        return len(self.paths)

    @property
    def shape(self):
        return (len(self.paths), *self.size, 3)

    @property
    def nbytes(self):
        return int(np.prod(self.shape))

    def files(self):
        """The absolute path of every image, in order."""
        return [str(self.root / p) for p in self.paths]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return decode(self.root / self.paths[index], self.size)
        if isinstance(index, tuple):
            raise TypeError("images streamed from their files are indexed by image, not by pixel")
        return FileImages(self.root, self.paths[index], self.size)


def scan(root):
    """``(class names, {split: [(relative path, label)]}, layout)`` of an image-folder tree, checked."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"data directory {root} does not exist")
    if (root / "train").is_dir():
        classes = _class_folders(root / "train")
        listing = {"train": _files(root, "train", classes, required=True)}
        for split in ("val", "test"):
            if (root / split).is_dir():
                extra = sorted(set(_class_folders(root / split, minimum=1)) - set(classes))
                if extra:
                    raise InputError(f"{root / split} has class folders that train/ lacks: {', '.join(extra)}")
                listing[split] = _files(root, split, classes, required=False)
        return classes, listing, "split folders (" + ", ".join(listing) + ")"
    classes = _class_folders(root)
    return classes, {"all": _files(root, None, classes, required=True)}, "class folders"


def _class_folders(directory, minimum=2):
    """The sorted class folder names under ``directory``; fewer than ``minimum`` is an error."""
    names = sorted(p.name for p in directory.iterdir() if p.is_dir() and not is_hidden(p))
    if len(names) < minimum:
        raise InputError(f"{directory} holds {len(names)} class folder{'s' if len(names) != 1 else ''}; an image-"
                         f"folder dataset needs at least {minimum} (ROOT/<class>/* or ROOT/train/<class>/*)")
    return tuple(names)


def _files(root, split, classes, required):
    """``[(relative path, label)]`` of the image files of every class folder of one split."""
    base = root / split if split else root
    files = []
    for label, name in enumerate(classes):
        folder = base / name
        found = sorted(p for p in folder.iterdir() if is_image_file(p)) if folder.is_dir() else []
        if required and not found:
            raise InputError(f"class folder {folder} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
        files += [(str(p.relative_to(root)), label) for p in found]
    return files


def _split_stratified(y, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION, seed=0):
    """Indices ``(train, val, test)``: scikit-learn's stratified ``train_test_split``, ``test_fraction`` of all
    images first, then ``val_fraction`` of the rest, so that the test images of a seed do not depend on
    ``val_fraction``."""
    for name, value in (("validation", val_fraction), ("test", test_fraction)):
        if not 0 <= value < 1:
            raise InputError(f"the {name} fraction must lie in [0, 1), got {value}")
    index = np.arange(len(y))
    counts = np.bincount(y)
    parts = ["train"] + ["validation"] * bool(val_fraction) + ["test"] * bool(test_fraction)
    if counts.min() < len(parts):
        raise InputError(f"class {int(counts.argmin())} has {counts.min()} image{'s' if counts.min() != 1 else ''}: "
                         f"too few to split stratified into {', '.join(parts)}")
    try:
        rest, test = (index, index[:0]) if not test_fraction else train_test_split(
            index, test_size=test_fraction, stratify=y, random_state=seed)
        train, val = (rest, rest[:0]) if not val_fraction else train_test_split(
            rest, test_size=val_fraction, stratify=y[rest], random_state=seed)
    except ValueError as e:  # e.g. a test set smaller than the number of classes
        raise InputError(f"cannot split {len(y)} images stratified: {e}") from None
    return np.sort(train), np.sort(val), np.sort(test)


def header(path):
    """``(width, height)`` of an image file from its header, or the reason it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return _reason(e)


def decode(path, size):
    """One image file as RGB uint8 of ``size`` (height, width): upright, converted, resized with Lanczos."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are checked first
        with Image.open(path) as im:
            if max(im.size) > MAX_SIDE:
                raise InputError(f"{path}: {im.size[0]}x{im.size[1]} pixels, larger than {MAX_SIDE} on a side")
            im.seek(0)  # an animated GIF's first frame
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16 bits (or more) per pixel: scale, not clip
                gray = np.asarray(im, dtype=np.float64)
                scale = 65535.0 if im.mode.startswith("I;16") or gray.max() <= 65535 else float(gray.max())
                im = Image.fromarray(np.round(np.clip(gray, 0, scale) / scale * 255).astype(np.uint8), "L")
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            im = im.convert("RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8)


def _reason(error):
    """A one-line reason from a decoding error."""
    return " ".join(str(error).split())[:200] or type(error).__name__


def load(root, image_size=None, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION, seed=0,
         skip_unreadable=False, verbose=0, memory_budget=None, truth=None, labels=None):
    """Decode an image-folder tree into a :class:`~keras_apml.dataset.Dataset`, from the cache when it was
    decoded before.

    ``image_size`` is ``(height, width)``; None takes the size every image
    shares, and refuses a tree of mixed sizes. ``val_fraction``,
    ``test_fraction`` and ``seed`` split what the tree does not (see the
    module's text). ``verbose`` shows the progress of decoding (Keras's
    convention). Past ``memory_budget`` bytes of decoded images, every
    file is decoded once to check it and then left where it is: the splits
    hold :class:`FileImages`, streamed through tf.data. ``labels`` is a
    labels file (``FILE`` or ``FILE:COLUMN``, :func:`keras_apml.label_files.read_labels`) whose labels replace
    the class folders' as the observed labels; ``truth`` one giving the true classes. Each must name every
    training image (train and validation); an image of another split without a row keeps its folder's label
    (taken to be right), and a row that names no image of the tree is an error.
    """
    root = Path(root).expanduser().resolve()
    data = _load(root, image_size, val_fraction, test_fraction, seed, skip_unreadable, verbose, memory_budget)
    for spec, what, field in ((labels, "labels file", "y"), (truth, "truth file", "y_true")):
        if spec is not None:
            data = _labelled(data, read_labels(spec, what, data.class_names), f"the {what} {spec}", field)
    return data


TRAINING_SPLITS = ("train", "validation")


def _labelled(data, mapping, source, field):
    """``data`` with each image's ``field`` (observed ``y`` or true ``y_true``) from ``mapping``; ``source`` names
    the file in errors."""
    known = {p for split in data.values() for p in split.paths} | {p for p, _ in data.skipped}
    stray = [p for p in mapping if p not in known]
    if stray:
        raise InputError(f"{source} names {len(stray)} path(s) that are no image of {data.source}, e.g. "
                         f"{stray[0][:200]!r}")
    missing = [p for name in TRAINING_SPLITS if name in data.splits for p in data[name].paths if p not in mapping]
    if missing:
        shown = ", ".join(repr(p[:200]) for p in missing[:5])
        raise InputError(f"{source} has no row for {len(missing)} training image(s): {shown}"
                         f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}")
    return data.replace(**{name: split.replace(**{field: np.array([mapping.get(p, y) for p, y in zip(
        split.paths, split.y)], dtype=np.int64)}) for name, split in data.items()})


def _load(root, image_size, val_fraction, test_fraction, seed, skip_unreadable, verbose, memory_budget):
    """:func:`load` without the truth file."""
    classes, listing, layout = scan(root)
    everything = [path for files in listing.values() for path, _ in files]
    key = hashlib.sha256(f"{root}|{image_size}|{val_fraction}|{test_fraction}|{seed}|{skip_unreadable}".encode())
    for path in everything:
        stat = (root / path).stat()
        key.update(f"{path}/{stat.st_size}/{stat.st_mtime_ns}\n".encode())
    name = f"images-{key.hexdigest()[:20]}.npz"
    # An entry holds what an earlier call decoded from these very files: no header needs reading again, unless
    # the images might have to stay in their files (a budget, and a size still to be read from the headers).
    fits = memory_budget is None or (image_size is not None and _bytes(len(everything), image_size) <= memory_budget)
    cached = cache.load(name) if fits else None
    if cached is not None:
        return _from_arrays(cached, root, layout)
    sizes, skipped = {}, []
    for path in everything:
        got = header(root / path)
        if isinstance(got, str):
            if not skip_unreadable:
                raise InputError(f"{root / path}: cannot read image ({got}); fix or remove it, or pass "
                                 "--skip-unreadable to leave unreadable files out")
            skipped.append((path, got))
        else:
            sizes[path] = got
    if image_size is None:
        distinct = sorted(set(sizes.values()))
        if len(distinct) > 1:
            shown = ", ".join(f"{w}x{h}" for w, h in distinct[:3])
            raise InputError(f"the images under {root} come in {len(distinct)} sizes ({shown}, ...): pass "
                             "--image-size to resize them all to one")
        image_size = (distinct[0][1], distinct[0][0])
    if memory_budget is not None and _bytes(len(sizes), image_size) > memory_budget:
        return _streamed(root, listing, sizes, classes, image_size, layout, skipped, skip_unreadable,
                         (val_fraction, test_fraction, seed), verbose)
    cached = None if fits else cache.load(name)
    if cached is not None:
        return _from_arrays(cached, root, layout)
    decoded = dict(_decode_all(root, sizes, image_size, skip_unreadable, skipped,
                               StepProgress("decoding images", len(sizes), verbose)))
    splits = _splits(listing, decoded, classes, val_fraction, test_fraction, seed)
    arrays = {"class_names": np.array(classes), "skipped": np.array([f"{p}\t{r}" for p, r in skipped], dtype=str)}
    for split, (x, y, paths) in splits.items():
        arrays.update({f"x_{split}": x, f"y_{split}": y, f"paths_{split}": np.array(paths, dtype=str)})
    cache.save(name, arrays, about=f"{len(decoded)} images decoded from {root} at {image_size[1]}x{image_size[0]}")
    return _from_arrays(arrays, root, layout)


def _bytes(count, image_size):
    """The memory ``count`` decoded RGB uint8 images of ``image_size`` take."""
    return count * image_size[0] * image_size[1] * 3


def _streamed(root, listing, sizes, classes, image_size, layout, skipped, skip_unreadable, split, verbose):
    """A :class:`~keras_apml.dataset.Dataset` of :class:`FileImages`: every file decoded once to check it, none
    kept."""
    readable = {path: path for path, _ in _decode_all(root, sizes, image_size, skip_unreadable, skipped,
                                                      StepProgress("checking images", len(sizes), verbose))}
    splits = _splits(listing, readable, classes, *split, stack=lambda paths: FileImages(root, paths, image_size))
    return Dataset({SPLIT_NAMES[s]: Split(x, y, paths=tuple(paths)) for s, (x, y, paths) in splits.items()},
                   tuple(classes), str(root), layout, tuple(skipped))


def _decode_all(root, paths, image_size, skip_unreadable, skipped, progress):
    """Yield ``(path, image)`` for every file that decodes; one that does not is an InputError naming it, or with
    ``skip_unreadable`` is appended to ``skipped``."""
    for i, path in enumerate(paths, start=1):
        try:
            yield path, decode(root / path, image_size)
        except InputError:
            raise
        except (OSError, ValueError, SyntaxError) as e:  # a header that reads but pixels that do not
            if not skip_unreadable:
                raise InputError(f"{root / path}: cannot decode image ({_reason(e)}); fix or remove it, or pass "
                                 "--skip-unreadable to leave unreadable files out") from None
            skipped.append((path, _reason(e)))
        if i % 500 == 0 or i == len(paths):
            progress.update(i)


def _splits(listing, decoded, classes, val_fraction, test_fraction, seed, stack=None):
    """``{split: (x, y, paths)}`` from the decoded images, split here when the tree has no split folders."""
    def arrays(files):
        kept = [(p, label) for p, label in files if p in decoded]
        if stack is not None:
            x = stack([p for p, _ in kept])
        else:
            x = np.stack([decoded[p] for p, _ in kept]) if kept else np.zeros((0, 0, 0, 3), np.uint8)
        return x, np.array([label for _, label in kept], dtype=np.int64), [p for p, _ in kept]

    if "all" not in listing:
        out = {split: arrays(files) for split, files in listing.items()}
        if "val" not in out and val_fraction:  # validation images split off train/, stratified and seeded
            x, y, paths = out.pop("train")
            train, val, _ = _split_stratified(y, val_fraction, 0.0, seed)
            out = {"train": (x[train], y[train], [paths[i] for i in train]),
                   "val": (x[val], y[val], [paths[i] for i in val]), **out}
    else:
        x, y, paths = arrays(listing["all"])
        out = {}
        for split, idx in zip(SPLIT_FOLDERS, _split_stratified(y, val_fraction, test_fraction, seed)):
            if len(idx):
                out[split] = (x[idx], y[idx], [paths[i] for i in idx])
    missing = [classes[c] for c in range(len(classes)) if not np.any(out["train"][1] == c)]
    if missing:
        raise InputError(f"no readable training image of class {', '.join(missing)}")
    return out


def _from_arrays(arrays, root, layout):
    """A :class:`~keras_apml.dataset.Dataset` from the arrays :func:`load` caches."""
    splits = {SPLIT_NAMES[s]: Split(arrays[f"x_{s}"], arrays[f"y_{s}"],
                                    paths=tuple(str(p) for p in arrays[f"paths_{s}"]))
              for s in SPLIT_FOLDERS if f"x_{s}" in arrays}
    skipped = tuple(tuple(str(line).split("\t", 1)) for line in arrays["skipped"])
    return Dataset(splits, tuple(str(c) for c in arrays["class_names"]), str(root), layout, skipped)


