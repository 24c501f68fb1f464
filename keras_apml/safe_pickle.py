"""A restricted unpickler for data files: it admits numpy arrays (and torch
tensors where torch is installed) and refuses every other global, so a
malicious pickle is rejected before any of its code runs."""

import io
import pickle

import numpy as np

from keras_apml.errors import InputError

# (module, name) -> object. Old pickles name numpy.core, new ones numpy._core.
_NUMPY_GLOBALS = {
    "_reconstruct": np._core.multiarray._reconstruct,
    "scalar": np._core.multiarray.scalar,
}
_ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
for _core in ("numpy.core", "numpy._core"):
    for _name, _obj in _NUMPY_GLOBALS.items():
        _ALLOWED[(f"{_core}.multiarray", _name)] = _obj
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = np._core.numeric._frombuffer


def _latin1_encode(text, encoding="latin1"):
    """Protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1'); admit only that codec."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused codec {encoding!r}")
    return text.encode("latin1")


_ALLOWED[("_codecs", "encode")] = _latin1_encode
_ALLOWED.update(
    {("numpy.dtypes", name): getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")}
)


def _torch_globals():
    """The globals a pickled torch tensor needs, or {} when torch is absent."""
    try:
        import collections

        import torch
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


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose find_class admits only numpy (and torch) array types."""

    def find_class(self, module, name):
        allowed = {**_ALLOWED, **_torch_globals()} if module.startswith(("torch", "collections")) else _ALLOWED
        try:
            return allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: data files may hold only arrays") from None


def load_pickle(path, encoding="ASCII"):
    """Load a pickle file with RestrictedUnpickler; bad or unsafe files raise InputError."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding=encoding).load()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except pickle.UnpicklingError as e:
        raise InputError(f"{path}: unsafe or corrupt pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise InputError(f"{path}: corrupt pickle ({type(e).__name__}: {e})") from None
