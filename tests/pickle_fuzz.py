"""Fuzz the restricted unpickler: random mutations of valid pickles must load or raise InputError, nothing else.

Run as a script (the test runs it in a subprocess, so that a segfault shows as
a signal instead of killing pytest): ``python tests/pickle_fuzz.py N SEED``
mutates valid pickles of protocols 2, 4 and 5 N times in all and prints one
line per outcome kind; it exits 1 on any other exception.
"""

import collections
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

from keras_apml.errors import InputError
from keras_apml.safe_pickle import load_pickle

PROTOCOLS = (2, 4, 5)


def valid_payloads(protocol):
    """Pickles of the shapes the project reads: course (image, label) pairs and a CIFAR-10 batch."""
    rng = np.random.default_rng(protocol)
    course = [(rng.uniform(-1, 1, (3, 4, 4)).astype(np.float32), np.int64(i % 3)) for i in range(3)]
    batch = {b"data": rng.integers(0, 256, (4, 12), dtype=np.uint8), b"labels": [0, 1, 2, 3],
             b"filenames": [b"a.png"] * 4, b"mixed": (np.ones((2, 3), np.float16).T, np.array([True]), 1.5)}
    return [pickle.dumps(course, protocol=protocol), pickle.dumps(batch, protocol=protocol)]


def mutate(raw, rng):
    """One to four random edits: flip a bit, set a byte, insert or delete bytes, truncate, repeat a chunk."""
    data = bytearray(raw)
    for _ in range(rng.integers(1, 5)):
        if not data:
            break
        i = int(rng.integers(len(data)))
        kind = rng.integers(6)
        if kind == 0:
            data[i] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            data[i] = int(rng.integers(256))
        elif kind == 2:
            data[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        elif kind == 3:
            del data[i:i + int(rng.integers(1, 9))]
        elif kind == 4:
            del data[i:]
        else:
            j = min(len(data), i + int(rng.integers(1, 17)))
            data[i:i] = data[i:j]
    return bytes(data)


def main(total, seed):
    rng = np.random.default_rng(seed)
    outcomes = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.pickle"
        for n in range(total):
            protocol = PROTOCOLS[n % len(PROTOCOLS)]
            payloads = valid_payloads(protocol)
            path.write_bytes(mutate(payloads[n % len(payloads)], rng))
            try:
                load_pickle(path, encoding="bytes")
                outcomes["loaded"] += 1
            except InputError:
                outcomes["refused"] += 1
            except BaseException as e:  # anything else is the bug this fuzz looks for
                print(f"mutation {n} (protocol {protocol}) escaped as {type(e).__name__}: {e}")
                return 1
    print(f"mutations {total}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
