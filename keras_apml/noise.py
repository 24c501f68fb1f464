"""Known-truth study data: draw per-class counts from a labelled set (imbalance), then wrong labels (noise).

Noise is given as asymmetric pairs, ``cat->car:0.676`` (that share of the
cats drawn get the label car, exactly ``round(0.676 * cats)`` of them), or
as a symmetric rate (that share of every class gets another class, chosen
uniformly); both are seeded. The car/truck/cat benchmark is one such draw
(:func:`keras_apml.benchmark.car_truck_cat`).
"""

import numpy as np

from keras_apml.errors import InputError, check_number


def parse_pairs(text, class_names):
    """``"cat->car:0.676,dog->cat:0.1"`` -> ``[(source label, target label, rate)]``, names checked."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            names, rate = item.rsplit(":", 1)
            source, target = (n.strip() for n in names.split("->"))
        except ValueError:
            raise InputError(f"noise pair {item!r} is not of the form source->target:rate (e.g. cat->car:0.676)") \
                from None
        for name in (source, target):
            if name not in class_names:
                raise InputError(f"noise pair {item!r}: no class {name!r}; the classes are {', '.join(class_names)}")
        if source == target:
            raise InputError(f"noise pair {item!r} relabels a class as itself")
        try:
            value = float(rate)
        except ValueError:
            raise InputError(f"noise pair {item!r}: rate {rate!r} is not a number") from None
        check_number(f"noise rate of {source}->{target}", value, low=0.0, high=1.0)
        if any((s, t) == (class_names.index(source), class_names.index(target)) for s, t, _ in pairs):
            raise InputError(f"noise pair {source}->{target} is given twice; give each pair once")
        pairs.append((class_names.index(source), class_names.index(target), value))
    if not pairs:
        raise InputError(f"no noise pair in {text!r}")
    for source in {s for s, _, _ in pairs}:
        total = sum(r for s, _, r in pairs if s == source)
        if total > 1:
            raise InputError(f"the noise rates out of {class_names[source]} add up to {total:g}, more than 1")
    return pairs


def draw(y, wanted, rng, pairs=(), symmetric=0.0, split="the source"):
    """Draw a study split from labels ``y``: returns ``(indices into y, true labels, observed labels)``.

    ``wanted`` lists ``(source label, count)`` per study class, in study
    label order; the images are drawn without replacement and shuffled.
    ``pairs`` (study labels, see :func:`parse_pairs`) then relabel exactly
    ``round(rate * n)`` images of each source class, in order, never one twice;
    ``symmetric`` relabels that share of every class to another, uniformly.
    """
    check_number("symmetric noise rate", symmetric, low=0.0, high=1.0)
    picked = []
    for source, count in wanted:
        pool = np.flatnonzero(np.asarray(y) == source)
        if count > len(pool):
            raise InputError(f"{split} has {len(pool)} images of the class asked for {count} times")
        picked.append(np.sort(rng.choice(pool, size=count, replace=False)))
    idx = np.concatenate(picked)
    y_true = np.repeat(np.arange(len(wanted)), [count for _, count in wanted])
    order = rng.permutation(len(idx))
    idx, y_true = idx[order], y_true[order]
    y_observed = y_true.copy()
    for source, target, rate in pairs:
        pool = np.flatnonzero((y_true == source) & (y_observed == y_true))
        flipped = rng.choice(pool, size=int(round(rate * np.sum(y_true == source))), replace=False)
        y_observed[flipped] = target
    if symmetric:
        k = len(wanted)
        for label in range(k):
            pool = np.flatnonzero((y_true == label) & (y_observed == y_true))
            flipped = rng.choice(pool, size=min(len(pool), int(round(symmetric * np.sum(y_true == label)))),
                                 replace=False)
            y_observed[flipped] = (label + rng.integers(1, k, size=len(flipped))) % k
    return idx, y_true, y_observed
