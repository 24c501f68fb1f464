"""A restricted unpickler for data files: plain numeric numpy arrays only.

It admits the few numpy globals that pickled arrays and scalars name, each
replaced by a checked version: only bool, integer and float dtypes (no
object, structured, void or datetime ones, whose bytes numpy would read as
pointers), a declared shape checked against the bytes that hold it before
anything is allocated, and a dtype's or array's state checked before numpy
sees it. Every other global is refused, so a malicious pickle is rejected
before any of its code runs, and any failure while reading is one
:class:`InputError`. (Torch tensors are admitted where torch is installed.)
"""

import collections
import io
import math
import pickle
import struct

import numpy as np

from keras_apml.errors import InputError

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integer, float
BYTE_ORDERS = ("<", ">", "|", "=")
# A simple dtype's pickled state: (version, byte order, subarray, names, fields, elsize, alignment, flags).
_DTYPE_STATE_TAIL = (None, None, None, -1, -1, 0)


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in a pickle: only :func:`_reconstruct` takes it, nothing can call it."""


_NDARRAY = _NdarrayToken()


def _numeric_dtype(spec):
    """A fresh numpy dtype for ``spec`` if it is a plain bool, integer or float type; else an error."""
    if not isinstance(spec, (str, bytes)) or len(spec) > 8:
        raise pickle.UnpicklingError(f"refused dtype {spec!r}: data files may hold only numeric arrays")
    spec = spec.decode("ascii") if isinstance(spec, bytes) else spec
    dtype = np.dtype(spec)
    if dtype.kind not in NUMERIC_KINDS or dtype.names is not None or dtype.subdtype is not None:
        raise pickle.UnpicklingError(f"refused dtype {spec!r}: data files may hold only bool, integer or float arrays")
    return dtype


def _dtype(spec, align=False, copy=True):
    """``numpy.dtype(spec, align, copy)`` for numeric types only, always a new object (its state may be set)."""
    if align is not False or copy is not True:
        raise pickle.UnpicklingError("refused dtype arguments: not as numpy pickles them")
    return np.dtype(_numeric_dtype(spec), align=False, copy=True)


def _check_dtype(dtype):
    """``dtype`` itself if it is a numeric numpy dtype."""
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError(f"expected a numpy dtype, got {type(dtype).__name__}")
    _numeric_dtype(dtype.str)
    return dtype


def _check_shape(shape, itemsize, nbytes):
    """The shape as a tuple of ints whose elements fill exactly ``nbytes`` bytes of ``itemsize`` each."""
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(
            type(n) is int and 0 <= n for n in shape):
        raise pickle.UnpicklingError(f"refused array shape {shape!r}")
    if math.prod(shape) * itemsize != nbytes:
        raise pickle.UnpicklingError(f"array shape {shape} needs {math.prod(shape) * itemsize} bytes, "
                                     f"the pickle holds {nbytes}")
    return shape


def _reconstruct(subtype, shape, typecode):
    """numpy's ``_reconstruct`` as numpy pickles it: an empty ndarray whose state the BUILD sets."""
    if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError("refused _reconstruct arguments: not as numpy pickles an array")
    return np.ndarray((0,), "b")


def _frombuffer(buffer, dtype, shape, order):
    """numpy's protocol-5 ``_frombuffer``, with the shape checked against the buffer's length first."""
    if not isinstance(buffer, (bytes, bytearray)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("refused _frombuffer arguments")
    _check_shape(shape, _check_dtype(dtype).itemsize, len(buffer))
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order)


def _scalar(dtype, data):
    """numpy's ``scalar(dtype, bytes)`` for numeric dtypes, the bytes' length checked."""
    if not isinstance(data, bytes) or len(data) != _check_dtype(dtype).itemsize:
        raise pickle.UnpicklingError("refused scalar: not the bytes of one numeric value")
    return np.frombuffer(data, dtype=dtype)[0]


def _latin1_encode(text, encoding="latin1"):
    """Protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1'); admit only that codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused codec {encoding!r}")
    return text.encode("latin1")


# (module, name) -> what the pickle gets. Old pickles name numpy.core, new ones numpy._core.
_ALLOWED = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _dtype, ("_codecs", "encode"): _latin1_encode}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _scalar
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _frombuffer


def _torch_globals():
    """The globals a pickled torch tensor needs, or {} when torch is absent."""
    try:
        import torch  # optional: only a pickle holding torch tensors needs it
        import torch._utils
    except ImportError:
        return {}

    def load_storage_safely(data):
        # torch's own _load_from_bytes calls torch.load(weights_only=False); this
        # does the same with torch's restricted loader.
        return torch.load(io.BytesIO(data), weights_only=True)

    return {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch.storage", "_load_from_bytes"): load_storage_safely,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }


class RestrictedUnpickler(pickle._Unpickler):
    """Python's own (pure-Python) Unpickler with checked numpy globals and a checked BUILD.

    The pure-Python unpickler reads a declared length from an in-memory file
    without allocating it, and lets BUILD be checked: a dtype's state must be
    the simple one numpy writes, an array's state must be a numeric dtype and
    exactly the bytes its shape needs, and only a dtype or array made in this
    load can have its state set, once.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, size, **kwargs):
        super().__init__(file, **kwargs)
        self._size = size  # the file's length: no declared length can exceed it
        self._unbuilt = {}  # id -> dtype or array made in this load, its state not yet set

    def find_class(self, module, name):
        allowed = {**_ALLOWED, **_torch_globals()} if module.startswith(("torch", "collections")) else _ALLOWED
        try:
            found = allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: data files may hold only arrays") from None
        if found in (_reconstruct, _dtype):
            return lambda *args: self._fresh(found(*args))
        return found

    def _fresh(self, obj):
        """Note an object made in this load whose state a BUILD may set, once."""
        self._unbuilt[id(obj)] = obj
        return obj

    def _take_fresh(self, obj, what):
        if self._unbuilt.pop(id(obj), None) is not obj:
            raise pickle.UnpicklingError(f"refused {what} state: not a {what} made by this pickle, or set twice")

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, np.dtype):
            self._take_fresh(target, "dtype")
            if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in BYTE_ORDERS
                    and state[2:] == _DTYPE_STATE_TAIL):
                raise pickle.UnpicklingError("refused dtype state: not that of a plain numeric dtype")
            target.__setstate__(state)
            _check_dtype(target)
            return
        if isinstance(target, np.ndarray):
            self._take_fresh(target, "array")
            if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
                raise pickle.UnpicklingError("refused array state: not as numpy pickles an array")
            _, shape, dtype, fortran, raw = state
            if type(fortran) is not bool or not isinstance(raw, bytes):
                raise pickle.UnpicklingError("refused array state: its data are not raw bytes")
            _check_shape(shape, _check_dtype(dtype).itemsize, len(raw))
            target.__setstate__(state)
            return
        if type(target).__module__.startswith("torch"):
            pickle._Unpickler.load_build(self)
            return
        raise pickle.UnpicklingError(f"refused state for a {type(target).__name__}: only arrays and dtypes have one")

    dispatch[pickle.BUILD[0]] = load_build

    def load_bytearray8(self):
        # Python's own reader allocates the declared length before reading: check it against the file first.
        (size,) = struct.unpack("<Q", self.read(8))
        if size > self._size:
            raise pickle.UnpicklingError(f"a bytearray of {size} bytes in a pickle of {self._size}")
        buffer = bytearray(size)
        self.readinto(buffer)
        self.append(buffer)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def load_pickle(path, encoding="ASCII"):
    """Load a pickle file with RestrictedUnpickler; any bad, unsafe or corrupt file raises one InputError."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return RestrictedUnpickler(io.BytesIO(raw), len(raw), encoding=encoding).load()
    except pickle.UnpicklingError as e:
        raise InputError(f"{path}: unsafe or corrupt pickle ({' '.join(str(e).split())})") from None
    except Exception as e:  # noqa: BLE001 - a corrupt file can raise anything while it is read; all of it is bad input
        message = " ".join(str(e).split())[:200]
        raise InputError(f"{path}: corrupt pickle ({type(e).__name__}: {message})") from None
