"""A restricted unpickler for the original release's pickles (fairseq checkpoints, joblib k-means files).

Only data is rebuilt: tensors, numpy arrays/dtypes/scalars and plain containers. Every other class a
pickle names (omegaconf configs, argparse namespaces, sklearn estimators, …) becomes an inert `Stub`
that merely records the arguments and state it was given, so no code from the file ever runs.
"""

from __future__ import annotations

import collections
import pickle
from typing import Any

_NUMPY_MODULES = (
    "numpy",
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
)
_ALLOWED: dict[tuple[str, str], str] = {
    ("collections", "OrderedDict"): "collections.OrderedDict",
    ("builtins", "set"): "set",
    ("builtins", "frozenset"): "frozenset",
    ("builtins", "slice"): "slice",
    ("_codecs", "encode"): "codecs.encode",  # how protocol-2 pickles store bytes (numpy array data)
    ("torch._utils", "_rebuild_tensor_v2"): "torch",
    ("torch._utils", "_rebuild_parameter"): "torch",
    ("torch._utils", "_rebuild_parameter_with_state"): "torch",
    ("torch", "Size"): "torch",
}
_NUMPY_ALLOWED = {"dtype", "ndarray", "scalar", "_reconstruct"}
_TORCH_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"}


class Stub:
    """Stands in for a class the pickle names but that is not trusted: keeps args and state, runs nothing."""

    module = ""
    name = ""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}  # noqa: RUF012  (never mutated; instances assign their own)
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"Stub({self.module}.{self.name})"


def _stub_class(module: str, name: str) -> type[Stub]:
    return type(name, (Stub,), {"module": module, "name": name})


def _reconstructor(cls: type, base: type, state: Any) -> Stub:
    """Safe `copyreg._reconstructor`: only ever builds stubs."""
    if not (isinstance(cls, type) and issubclass(cls, Stub)):
        raise pickle.UnpicklingError(f"Refusing to reconstruct {cls!r} from a pickle.")
    return cls()


def resolve_global(module: str, name: str) -> Any:
    """The object a pickle's GLOBAL may refer to: allowed data builders, or an inert stub class."""
    if (module, name) in _ALLOWED:
        if module == "collections":
            return collections.OrderedDict
        if module == "_codecs":
            import codecs

            return codecs.encode
        if module == "builtins":
            return {"set": set, "frozenset": frozenset, "slice": slice}[name]
        import torch

        return getattr(torch._utils, name) if module == "torch._utils" else torch.Size
    if module in _NUMPY_MODULES and name in _NUMPY_ALLOWED:
        import numpy as np

        numpy_module = np if module == "numpy" else __import__(module, fromlist=[name])
        return getattr(numpy_module, name)
    if module == "torch" and name in _TORCH_DTYPES:
        import torch

        return getattr(torch, name)
    if module == "copyreg" and name == "_reconstructor":
        return _reconstructor
    return _stub_class(module, name)


class RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler, so subclasses may hook opcodes
    """`pickle.Unpickler` whose `find_class` only returns data builders or inert stubs."""

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name)


# `torch.load(..., pickle_module=safe_pickle)` builds its unpickler on this name.
Unpickler = RestrictedUnpickler


def load(file: Any, **kwargs: Any) -> Any:
    """`pickle.load` with the restricted unpickler (what `torch.load` calls for legacy non-zip files)."""
    return RestrictedUnpickler(file, **kwargs).load()


def plain(obj: Any) -> Any:
    """Plain Python data from stubs: omegaconf nodes (`_content` / `_val`) and namespaces become dicts/values."""
    if isinstance(obj, Stub):
        state = obj.state
        if isinstance(state, dict):
            if "_content" in state:
                return plain(state["_content"])
            if "_val" in state:
                return plain(state["_val"])
            return {k: plain(v) for k, v in state.items() if not k.startswith("_")}
        return plain(state) if state is not None else None
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    return obj


__all__ = ["RestrictedUnpickler", "Stub", "Unpickler", "load", "plain", "resolve_global"]
