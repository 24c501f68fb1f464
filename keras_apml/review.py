"""Reviewing flagged labels: what is reviewed (a :class:`ReviewSet`), and the reviewer's :class:`Decisions`.

A review set holds the flagged images, most likely wrong first, with their
observed and suggested labels and label-quality scores, then a few unflagged
images of each class to compare them with. The decisions are one log, every
change appended with the reviewer's time and the whole written atomically, so
that a reload or a crash loses nothing that was answered; the current
decisions export to a relabel file that ``experiments.train --relabel`` takes.
"""

import datetime
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_apml import atomic, label_files, npz
from keras_apml.errors import InputError

DECISIONS = ("keep", "accept", "relabel", "drop")  # the label as given, the suggested one, another, none
COMPARE_PER_CLASS = 8  # unflagged images of each class saved beside the flags


@dataclass(frozen=True)
class ReviewSet:
    """The images to review: ``flagged`` flags (most likely wrong first) then unflagged images to compare with.

    ``images`` uint8 (n, height, width, 3); per image its ``index`` into the
    training images, ``observed`` and ``suggested`` labels, label-quality
    ``score`` (lower: likelier wrong), ``truth`` where known (else None), and
    its ``paths`` where the images have files (your own folders); ``made_from``: what the training images
    ``index`` counts in are (:func:`keras_apml.label_files.provenance`), which the export of the decisions says.
    """

    images: np.ndarray
    index: np.ndarray
    observed: np.ndarray
    suggested: np.ndarray
    score: np.ndarray
    flagged: int
    class_names: tuple
    truth: np.ndarray | None = None
    paths: tuple | None = None
    made_from: dict | None = None  # what ``index`` is positions in (label_files.provenance), for the export

    def __len__(self):
        return len(self.index)

    def digest(self):
        """A hash of which images are reviewed with which labels: decisions belong to one review set."""
        parts = (self.index, self.observed, self.suggested, np.asarray(self.class_names, dtype=str))
        return hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest()


def review_set(images, labels, probabilities, flagged, scores, class_names, *, truth=None, paths=None, seed=0,
               compare=COMPARE_PER_CLASS, made_from=None):
    """The review set of a detection: the ``flagged`` training images in their order, then up to ``compare``
    unflagged images of each class (drawn with ``seed``); ``scores`` are every label's label-quality score;
    ``made_from``: what the training images are (:func:`keras_apml.label_files.provenance`)."""
    flagged = np.asarray(flagged, dtype=np.int64)
    rng = np.random.default_rng(seed)
    unflagged = np.ones(len(labels), dtype=bool)
    unflagged[flagged] = False
    others = [np.sort(rng.permutation(np.flatnonzero(unflagged & (labels == c)))[:compare])
              for c in range(len(class_names))]
    index = np.concatenate([flagged, *others]).astype(np.int64)
    picked = np.stack([np.asarray(images[int(i)]) for i in index]) if len(index) else \
        np.zeros((0, *images.shape[1:]), np.uint8)
    return ReviewSet(images=picked.astype(np.uint8), index=index, observed=np.asarray(labels)[index],
                     suggested=np.asarray(probabilities)[index].argmax(axis=1), score=np.asarray(scores)[index],
                     flagged=len(flagged), class_names=tuple(class_names),
                     truth=None if truth is None else np.asarray(truth)[index],
                     paths=None if paths is None else tuple(paths[int(i)] for i in index), made_from=made_from)


def save_review_set(path, reviewed):
    """Write a review set to an .npz file (atomically, without pickles)."""
    r = reviewed
    arrays = dict(images=r.images, index=r.index, observed=r.observed, suggested=r.suggested,
                  score=r.score.astype(np.float32), flagged=np.int64(r.flagged),
                  class_names=np.asarray(r.class_names, dtype=str))
    if r.truth is not None:
        arrays["truth"] = r.truth
    if r.paths is not None:
        arrays["paths"] = np.asarray(r.paths, dtype=str)
    if r.made_from is not None:
        arrays["made_from"] = np.asarray(json.dumps(r.made_from, sort_keys=True))
    npz.save_arrays(path, **arrays)


# Each array of a saved review set: its dimensions and the kinds of its values (numpy's dtype.kind).
SHAPES = {"images": (4, "u"), "index": (1, "iu"), "observed": (1, "iu"), "suggested": (1, "iu"), "score": (1, "fiu"),
          "flagged": (0, "iu"), "class_names": (1, "U"), "truth": (1, "iu"), "paths": (1, "U"), "made_from": (0, "U")}


def load_review_set(path):
    """Read and check a review set that :func:`save_review_set` wrote; anything amiss is one InputError."""
    a = npz.load_arrays(path)
    needed = ("images", "index", "observed", "suggested", "score", "flagged", "class_names")
    missing = [k for k in needed if k not in a]
    if missing:
        raise InputError(f"{path} is not a review set: it lacks {', '.join(missing)}")
    for key, (ndim, kinds) in SHAPES.items():
        if key in a and (a[key].ndim != ndim or a[key].dtype.kind not in kinds or a[key].dtype.fields is not None):
            raise InputError(f"{path}: its {key} is not what this tool writes (a {ndim}-dimensional array of "
                             f"{a[key].dtype} values, shape {a[key].shape})")
    n, names = len(a["index"]), tuple(str(c) for c in a["class_names"])
    per_image = [a[k] for k in ("index", "observed", "suggested", "score", "truth", "paths") if k in a]
    if (a["images"].dtype != np.uint8 or a["images"].shape[0] != n or a["images"].shape[-1] != 3
            or any(len(v) != n for v in per_image) or not 0 <= int(a["flagged"]) <= n or not names
            or len(set(names)) != len(names)):
        raise InputError(f"{path}: its arrays disagree in length or type: not a review set this tool wrote")
    if not np.all(np.isfinite(a["score"])) or (n and a["index"].min() < 0):
        raise InputError(f"{path}: its scores or indices are not what this tool writes")
    for k in ("observed", "suggested", "truth"):
        if k in a and a[k].size and not (0 <= a[k].min() and a[k].max() < len(names)):
            raise InputError(f"{path}: {k} labels out of the {len(names)} classes")
    made_from = None
    if "made_from" in a:
        made_from = label_files.read_made_from(label_files.MADE_FROM + str(a["made_from"]), path)
    return ReviewSet(images=a["images"], index=a["index"].astype(np.int64), observed=a["observed"].astype(np.int64),
                     suggested=a["suggested"].astype(np.int64), score=a["score"].astype(np.float64),
                     flagged=int(a["flagged"]), class_names=names,
                     truth=a["truth"].astype(np.int64) if "truth" in a else None,
                     paths=tuple(str(p) for p in a["paths"]) if "paths" in a else None, made_from=made_from)


class Decisions:
    """The decisions on the flags of a :class:`ReviewSet`, kept as one log in a JSON file.

    Every :meth:`decide` and :meth:`undo` appends to the log (with the time, in
    UTC) and rewrites the file atomically before it returns, and rewrites the
    ``export`` relabel file: what is answered is on disk. :meth:`undo` takes
    back the latest decision still standing, whichever item it was. An
    existing file resumes the review; one of another review set, or damaged,
    is an InputError and is left as it is. Safe to call from several threads.
    """

    def __init__(self, path, reviewed, export):
        self.path, self.reviewed, self.export_path = Path(path), reviewed, Path(export)
        self._lock = threading.RLock()
        self._log = self._read()

    def _read(self):
        """The log in the file, checked against the review set; empty when there is no file yet."""
        if not self.path.exists():
            return []
        text = label_files.read_text(self.path, "decision log")
        try:
            saved = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise InputError(f"cannot read the decisions in {self.path} ({type(e).__name__}); move it aside to "
                             "start the review afresh") from None
        if not isinstance(saved, dict) or saved.get("review_set") != self.reviewed.digest():
            raise InputError(f"{self.path} holds decisions on other flags than this run's; move it aside to start "
                             "the review afresh")
        log = saved.get("log")
        if not isinstance(log, list) or not all(isinstance(e, dict) for e in log):
            raise InputError(f"{self.path}: its log is not a list of decisions")
        for entry in log:
            if not isinstance(entry.get("time"), str):
                raise InputError(f"{self.path}: an entry of its log has no time: {str(entry)[:200]}")
            if entry.get("decision") == "undo":
                continue
            if not {"item", "decision", "label"} <= entry.keys():
                raise InputError(f"{self.path}: an entry of its log lacks its item, decision or label: "
                                 f"{str(entry)[:200]}")
            self._check(entry.get("item"), entry.get("decision"), entry.get("label"), where=str(self.path))
            if (entry["label"] is None) != (entry["decision"] == "drop") or \
                    entry["label"] is not None and entry["label"] not in self.reviewed.class_names:
                raise InputError(f"{self.path}: label {entry['label']!r} of a {entry['decision']} decision is not "
                                 "what this tool writes")
        self._log = log
        self._export(text)  # the export follows the log, however a stopped review left the two
        return log

    def _check(self, item, decision, label, where="request"):
        """Refuse a decision on an image that is not a flag, of an unknown kind, or to a class that is not one."""
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item < self.reviewed.flagged:
            raise InputError(f"{where}: item {item!r} is not one of the {self.reviewed.flagged} flags")
        if decision not in DECISIONS:
            raise InputError(f"{where}: decision {decision!r} is not one of {', '.join(DECISIONS)}")
        if decision == "relabel" and label not in self.reviewed.class_names:
            raise InputError(f"{where}: label {label!r} is not one of {', '.join(self.reviewed.class_names)}")

    def decide(self, item, decision, label=None):
        """Record a decision on flag ``item``: keep, accept (the suggestion), relabel (to ``label``) or drop."""
        self._check(item, decision, label)
        names, r = self.reviewed.class_names, self.reviewed
        label = {"keep": names[r.observed[item]], "accept": names[r.suggested[item]], "drop": None}.get(decision, label)
        self._append({"time": _now(), "item": item, "index": int(r.index[item]), "decision": decision,
                      "label": label})

    def undo(self):
        """Take back the latest decision still standing; returns its item, or None when there is none."""
        with self._lock:
            standing = self._standing()
            if not standing:
                return None
            item = self._log[standing[-1]]["item"]
            self._append({"time": _now(), "item": item, "decision": "undo"})
            return item

    def _append(self, entry):
        """Add ``entry`` to the log and write it; if writing fails the log is as it was, and the error raised."""
        with self._lock:
            self._log.append(entry)
            try:
                self._save()
            except BaseException:
                self._log.pop()
                raise

    def _standing(self):
        """Positions in the log of the decisions not undone, oldest first."""
        standing = []
        for position, entry in enumerate(self._log):
            if entry["decision"] != "undo":
                standing.append(position)
            elif standing:
                standing.pop()
        return standing

    def current(self):
        """Each decided flag's standing decision: ``{item: {"decision", "label", "time"}}``."""
        with self._lock:
            now = {}
            for position in self._standing():
                entry = self._log[position]
                now[entry["item"]] = {k: entry[k] for k in ("decision", "label", "time")}
            return now

    def new_labels(self):
        """``(training indices, new labels)`` the decisions change: a class index, or ``label_files.DROPPED``."""
        r, names = self.reviewed, self.reviewed.class_names
        index, labels = [], []
        for item, d in sorted(self.current().items(), key=lambda kv: r.index[kv[0]]):  # by training index
            y = label_files.DROPPED if d["label"] is None else names.index(d["label"])
            if y != r.observed[item]:
                index.append(int(r.index[item]))
                labels.append(y)
        return np.array(index, np.int64), np.array(labels, np.int64)

    def state(self):
        """``(current(), summary())`` read together, the log replayed once."""
        with self._lock:
            now = self.current()
            return now, self.summary(now)

    def summary(self, now=None):
        """How many flags are decided and left, each kind of decision, and, where the truth is known, how many
        decisions were right (keep: the label was right; accept, relabel: the new label is; drop: the label was
        wrong); ``now``: :meth:`current`'s answer, where the caller has it."""
        now, r = self.current() if now is None else now, self.reviewed
        counts = {kind: sum(d["decision"] == kind for d in now.values()) for kind in DECISIONS}
        out = {"flags": r.flagged, "decided": len(now), "left": r.flagged - len(now), **counts}
        if r.truth is not None:
            names = r.class_names
            out["right"] = sum(bool(r.observed[i] != r.truth[i] if d["label"] is None else
                                    names.index(d["label"]) == r.truth[i]) for i, d in now.items())
        return out

    def _save(self):
        """The log, then the relabel file it exports to, each written atomically (under the lock)."""
        self._export(atomic.write_json(self.path, {"review_set": self.reviewed.digest(), "flags": self.reviewed.flagged,
                                                   "class_names": list(self.reviewed.class_names), "log": self._log}))

    def _export(self, log_text):
        """Write the relabel file of the decisions in ``log_text`` (the log file's text), naming the log it is
        made from: ``train --relabel`` refuses an export that is not that of the log beside it."""
        paths = None
        if self.reviewed.paths is not None:  # the files' paths, by training index
            paths = dict(zip(self.reviewed.index.tolist(), self.reviewed.paths))
        label_files.write_relabel_file(self.export_path, *self.new_labels(), self.reviewed.class_names, paths=paths,
                                       made_from=self.reviewed.made_from,
                                       decisions=(self.path, hashlib.sha256(log_text.encode()).hexdigest()))


def _now():
    """The time now in UTC, to the second, ISO 8601."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
