"""Reads the k-means centres out of a joblib-pickled sklearn (MiniBatch)KMeans file, without joblib or sklearn.

joblib writes each numpy array as a `NumpyArrayWrapper` object (subclass, shape, order, dtype, …) whose
raw bytes follow right after the BUILD opcode that sets its state; joblib >= 1.2 first writes one byte
giving a padding length and that many padding bytes (alignment). The restricted unpickler here turns
the estimator and the wrapper into inert stubs and reads those bytes with numpy, nothing else.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .safe_pickle import RestrictedUnpickler, Stub

_WRAPPERS = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
}


class _JoblibUnpickler(RestrictedUnpickler):
    """Restricted unpickler that also reads the raw array bytes joblib places after each wrapper."""

    dispatch = dict(RestrictedUnpickler.dispatch)

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.file_handle = file

    def load_build(self) -> None:
        super().load_build()
        wrapper = self.stack[-1]
        if isinstance(wrapper, Stub) and (wrapper.module, wrapper.name) in _WRAPPERS:
            self.stack[-1] = self._read_array(wrapper.state)

    dispatch[pickle.BUILD[0]] = load_build

    def _read_array(self, state: dict[str, Any]) -> np.ndarray:
        dtype, shape, order = state["dtype"], tuple(state["shape"]), state.get("order", "C")
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise pickle.UnpicklingError(
                f"Refusing a joblib array of dtype {dtype!r} (only plain numeric arrays are read)."
            )
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.file_handle.read(1)[0]
            self.file_handle.read(padding)
        count = int(np.prod(shape)) if shape else 1
        data = np.frombuffer(self.file_handle.read(count * dtype.itemsize), dtype=dtype, count=count)
        if order == "F":
            return data.reshape(shape[::-1]).T
        return data.reshape(shape)


def read_joblib(path: str | Path) -> Any:
    """Loads an uncompressed joblib pickle with numeric arrays as numpy and every other object as an inert `Stub`."""
    with open(path, "rb") as file:
        if file.read(1) != b"\x80":  # every pickle of protocol >= 2 starts with PROTO; compressed joblib does not
            raise ValueError(
                f"{path} is not an uncompressed joblib pickle (compressed joblib files: re-save with joblib.dump(obj, path))."
            )
        file.seek(0)
        return _JoblibUnpickler(file).load()


def read_kmeans_centers(path: str | Path) -> np.ndarray:
    """`cluster_centers_` [K, D] (float32) of a joblib/sklearn k-means file such as SpeechGPT's `…_km1000.bin`."""
    model = read_joblib(path)
    state = model.state if isinstance(model, Stub) else model
    if not isinstance(state, dict) or "cluster_centers_" not in state:
        raise ValueError(f"{path} holds no fitted k-means model (no `cluster_centers_`); got {model!r}.")
    centers = np.asarray(state["cluster_centers_"], dtype=np.float32)
    if centers.ndim != 2:
        raise ValueError(f"`cluster_centers_` in {path} should be 2-D [K, D], got shape {centers.shape}.")
    return np.ascontiguousarray(centers)


__all__ = ["read_joblib", "read_kmeans_centers"]
