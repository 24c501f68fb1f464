"""The restricted unpickler: plain numeric arrays load exactly; every crafted or mutated pickle is one InputError."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_apml.errors import InputError
from keras_apml.safe_pickle import load_pickle

ROOT = Path(__file__).parents[1]
RECONSTRUCT = np._core.multiarray._reconstruct


class Payload:
    """Pickles as ``callable(*args)`` followed by ``state``: any reduce a hand-made pickle could hold."""

    def __init__(self, callable_, args, state=None):
        self.reduced = (callable_, args) if state is None else (callable_, args, state)

    def __reduce__(self):
        return self.reduced


class DtypeWithState:
    """A dtype pickled with a state of our choosing (numpy's dtype.__setstate__ segfaults on some)."""

    def __init__(self, spec, state):
        self.spec, self.state = spec, state

    def __reduce__(self):
        return (np.dtype, (self.spec, False, True), self.state)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numeric_arrays_and_scalars_load_exactly(tmp_path, protocol):
    obj = {b"data": np.arange(24, dtype=np.uint8).reshape(2, 12),
           "fortran": np.arange(6, dtype=np.float16).reshape(2, 3).T, "flags": np.array([True, False]),
           "scalar": np.int64(-7), "big_endian": np.array([1.5, -2.0], ">f8")}
    (tmp_path / "p").write_bytes(pickle.dumps(obj, protocol=protocol))
    loaded = load_pickle(tmp_path / "p", encoding="bytes")
    assert set(loaded) == set(obj) and loaded["scalar"] == -7
    for key in obj:
        np.testing.assert_array_equal(loaded[key], obj[key])
        assert loaded[key].dtype.kind == obj[key].dtype.kind


@pytest.mark.parametrize("payload, message", [
    # an object array over attacker bytes: numpy would read them as pointers
    (Payload(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (2,), np.dtype("O"), False, b"A" * 16)), "refused dtype 'O"),
    (np.zeros(2, dtype=[("a", "O"), ("b", "f4")]), "refused dtype 'V"),
    (np.zeros(2, dtype=[("a", "f4")]), "refused dtype 'V"),
    (np.array(["2020-01-01"], "M8[D]"), "refused dtype 'M8"),
    (np.array([1 + 2j]), "refused dtype 'c16"),
    (np.array(["text"]), "refused dtype 'U4"),
    # a dtype state one value off what numpy writes
    (DtypeWithState("f8", (3, "<", None, None, None, -1, -1, 63)), "not that of a plain numeric dtype"),
    (DtypeWithState("f8", (3, "<", None, None, None, 4096, -1, 0)), "not that of a plain numeric dtype"),
    # 9 TiB asked for by 100 bytes
    (Payload(RECONSTRUCT, (np.ndarray, (10 ** 13,), b"b")), "refused _reconstruct arguments"),
    # a shape that needs more bytes than the state holds
    (Payload(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (10 ** 6,), np.dtype("f4"), False, b"\0" * 8)),
     r"needs 4000000 bytes, the pickle holds 8"),
    (Payload(np._core.numeric._frombuffer, (b"\0" * 8, np.dtype("f8"), (10 ** 9,), "C")), "needs 8000000000 bytes"),
    (Payload(np._core.multiarray.scalar, (np.dtype("f8"), b"\0")), "not the bytes of one numeric value"),
    (Payload(np.ndarray, ((10 ** 13,), "b")), "_NdarrayToken. object is not callable"),
    (Payload(os.system, ("true",)), r"refused global (posix|os)\.system"),
])
def test_crafted_pickles_are_refused_before_numpy_sees_them(tmp_path, payload, message):
    (tmp_path / "evil").write_bytes(pickle.dumps([payload], protocol=2))
    with pytest.raises(InputError, match=message) as e:
        load_pickle(tmp_path / "evil")
    assert "\n" not in str(e.value)


def test_a_persistent_id_pickle_is_one_line(tmp_path):
    class WithPersistentId(pickle.Pickler):
        def persistent_id(self, obj):
            return "external" if isinstance(obj, str) else None

    with open(tmp_path / "p", "wb") as f:
        WithPersistentId(f, protocol=2).dump(["a string"])
    with pytest.raises(InputError, match="unsafe or corrupt pickle") as e:
        load_pickle(tmp_path / "p")
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_a_thousand_mutations_of_valid_pickles_never_escape_or_crash():
    """1,500 random mutations (protocols 2, 4, 5) in a subprocess: a segfault would show as a signal."""
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "pickle_fuzz.py"), "1500", "0"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert done.stdout.startswith("mutations 1500: loaded ")
