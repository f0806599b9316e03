"""Reads a CTranslate2 `model.bin` (spec version 6) with `struct` and numpy alone: no ctranslate2, no pickle.

Layout (little endian): uint32 binary version, a uint16-length-prefixed NUL-terminated spec name (for example
"WhisperSpec"), uint32 spec revision, uint32 variable count, then per variable a uint16-length-prefixed
NUL-terminated name, uint8 rank, rank x uint32 dims, uint8 dtype, uint32 byte count and the raw bytes; then a
uint32 alias count and per alias two length-prefixed names (alias, target). Every read is bounds-checked, so a
truncated or corrupt file raises `CTranslate2FormatError` naming what is wrong instead of reading garbage.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUPPORTED_BINARY_VERSIONS = (6,)
# CTranslate2's DataType enum; values it adds later (float8 …) are refused with a clear error.
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
}
_BFLOAT16 = 5
MAX_RANK = 8


class CTranslate2FormatError(ValueError):
    """A CTranslate2 model file that cannot be read; the message says where and why."""


@dataclass
class CTranslate2Model:
    """The spec name and revision, every variable as a numpy array, and the aliases (name -> stored name)."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """The variable `name`, following an alias; a missing one raises `CTranslate2FormatError`."""
        stored = self.aliases.get(name, name)
        if stored not in self.variables:
            raise CTranslate2FormatError(f"The {self.spec} model has no variable {name!r}.")
        return self.variables[stored]

    def scalar(self, name: str) -> int:
        """An integer attribute stored as a 0-d variable (e.g. `encoder/num_heads`)."""
        return int(self.get(name).reshape(-1)[0])


class _Reader:
    """A cursor over the file's bytes whose every read checks that the bytes are there."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name, self.offset = data, name, 0

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise CTranslate2FormatError(
                f"{self.name} is truncated or corrupt: {what} needs {size} bytes at offset {self.offset} but the "
                f"file has {len(self.data)} bytes. Re-download or re-export the model."
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))[0]

    def string(self, what: str) -> str:
        raw = self.take(self.unpack("H", f"the length of {what}"), what)
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError as error:
            raise CTranslate2FormatError(f"{self.name}: {what} at offset {self.offset} is not text.") from error


def _read_variable(reader: _Reader) -> tuple[str, np.ndarray]:
    name = reader.string("a variable name")
    rank = reader.unpack("B", f"the rank of {name!r}")
    if rank > MAX_RANK:
        raise CTranslate2FormatError(f"{reader.name}: variable {name!r} claims rank {rank} (corrupt file).")
    shape = tuple(reader.unpack("I", f"a dimension of {name!r}") for _ in range(rank))
    code = reader.unpack("B", f"the dtype of {name!r}")
    if code not in DTYPES:
        hint = " (bfloat16: re-export the model as float16 or float32)" if code == _BFLOAT16 else ""
        raise CTranslate2FormatError(f"{reader.name}: variable {name!r} has unsupported dtype code {code}{hint}.")
    dtype = DTYPES[code]
    size = reader.unpack("I", f"the byte count of {name!r}")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise CTranslate2FormatError(
            f"{reader.name}: variable {name!r} of shape {shape} and dtype {dtype} should hold {expected} bytes, "
            f"the file says {size} (corrupt file)."
        )
    array = np.frombuffer(reader.take(size, f"the data of {name!r}"), dtype=dtype).reshape(shape)
    return name, array


def read_ctranslate2(path: str | Path) -> CTranslate2Model:
    """Parses a CTranslate2 `model.bin` (or the folder holding it) into a `CTranslate2Model`."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"No CTranslate2 model file at {path} (expected a folder holding model.bin).")
    reader = _Reader(path.read_bytes(), str(path))
    version = reader.unpack("I", "the binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CTranslate2FormatError(
            f"{path} has CTranslate2 binary version {version}; this reader handles {SUPPORTED_BINARY_VERSIONS} "
            "(is it a CTranslate2 model.bin at all?)."
        )
    spec = reader.string("the spec name")
    revision = reader.unpack("I", "the spec revision")
    variables = dict(_read_variable(reader) for _ in range(reader.unpack("I", "the variable count")))
    aliases = {}
    for _ in range(reader.unpack("I", "the alias count")):
        alias = reader.string("an alias name")
        aliases[alias] = reader.string(f"the target of alias {alias!r}")
    if reader.offset != len(reader.data):
        raise CTranslate2FormatError(f"{path} has {len(reader.data) - reader.offset} unexpected trailing bytes.")
    return CTranslate2Model(spec, revision, variables, aliases)


__all__ = ["CTranslate2FormatError", "CTranslate2Model", "read_ctranslate2"]
