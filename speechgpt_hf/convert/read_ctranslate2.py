"""Reads a CTranslate2 `model.bin` (spec version 6) with `struct` and numpy alone: no ctranslate2, no pickle.

Layout (little endian): uint32 binary version, a uint16-length-prefixed NUL-terminated spec name (for example
"WhisperSpec"), uint32 spec revision, uint32 variable count, then per variable a uint16-length-prefixed
NUL-terminated name, uint8 rank, rank x uint32 dims, uint8 dtype, uint32 byte count and the raw bytes; then a
uint32 alias count and per alias two length-prefixed names (alias, target). Every read is bounds-checked, so a
truncated or corrupt file raises `CTranslate2FormatError` naming what is wrong instead of reading garbage.

A model split into parts (`model.bin.part1`, `model.bin.part2`, … whose concatenation is `model.bin`, as some
registry packages ship it to stay under a size limit) is read by streaming the parts in order, with no joined copy
written anywhere.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

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
MODEL_FILE = "model.bin"
_PART = re.compile(r"^model\.bin\.part(\d+)$")


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
    """A cursor over the bytes of one file or of several parts read back to back, whose every read checks that
    the bytes are there (the total size is known before the first read)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.name = str(self.paths[0]) if len(self.paths) == 1 else " + ".join(str(p) for p in self.paths)
        self.size = sum(path.stat().st_size for path in self.paths)
        self.offset = 0
        self._next_part = 0
        self._file: BinaryIO | None = None

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _read(self, size: int) -> bytes:
        """`size` bytes from the current part, moving on to the next parts as each one ends."""
        chunks = []
        while size > 0:
            if self._file is None:
                if self._next_part == len(self.paths):
                    raise CTranslate2FormatError(f"{self.name} shrank while it was being read.")
                self._file = self.paths[self._next_part].open("rb")
                self._next_part += 1
            chunk = self._file.read(size)
            if not chunk:
                self._file.close()
                self._file = None
                continue
            chunks.append(chunk)
            size -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if size < 0 or end > self.size:
            raise CTranslate2FormatError(
                f"{self.name} is truncated or corrupt: {what} needs {size} bytes at offset {self.offset} but the "
                f"file has {self.size} bytes. Re-download or re-export the model."
            )
        chunk = self._read(size) if size else b""
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


def model_files(path: str | Path | Sequence[str | Path]) -> list[Path]:
    """The file or ordered parts that make up a CTranslate2 model: `path` itself (a model.bin, or a list of its parts
    in order, which may lie in different folders), or the folder's model.bin, or its model.bin.part1 … partN."""
    if not isinstance(path, (str, Path)):
        parts = [Path(p) for p in path]
        missing = [str(p) for p in parts if not p.is_file()]
        if not parts or missing:
            raise FileNotFoundError(f"CTranslate2 model parts not found: {missing or 'none given'}.")
        return parts
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir() and (path / MODEL_FILE).is_file():
        return [path / MODEL_FILE]
    numbered = sorted((int(m.group(1)), p) for p in path.glob("model.bin.part*") if (m := _PART.match(p.name)))
    if numbered:
        numbers = [n for n, _ in numbered]
        if numbers != list(range(1, len(numbers) + 1)):
            raise FileNotFoundError(
                f"{path} holds model.bin parts {numbers}, not 1 … {len(numbers)}: pass every part, in order, to "
                "read_ctranslate2([part1, part2, …]) (they may lie in different folders)."
            )
        return [p for _, p in numbered]
    raise FileNotFoundError(
        f"No CTranslate2 model file at {path} (expected a folder holding model.bin or model.bin.part1 …, a model.bin "
        "file, or a list of its parts)."
    )


def read_ctranslate2(path: str | Path | Sequence[str | Path]) -> CTranslate2Model:
    """Parses a CTranslate2 `model.bin` (its path, its folder, or its parts in order; see `model_files`) into a
    `CTranslate2Model`."""
    with _Reader(model_files(path)) as reader:
        return _parse(reader)


def _parse(reader: _Reader) -> CTranslate2Model:
    version = reader.unpack("I", "the binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CTranslate2FormatError(
            f"{reader.name} has CTranslate2 binary version {version}; this reader handles "
            f"{SUPPORTED_BINARY_VERSIONS} (is it a CTranslate2 model.bin at all?)."
        )
    spec = reader.string("the spec name")
    revision = reader.unpack("I", "the spec revision")
    variables = dict(_read_variable(reader) for _ in range(reader.unpack("I", "the variable count")))
    aliases = {}
    for _ in range(reader.unpack("I", "the alias count")):
        alias = reader.string("an alias name")
        aliases[alias] = reader.string(f"the target of alias {alias!r}")
    if reader.offset != reader.size:
        raise CTranslate2FormatError(f"{reader.name} has {reader.size - reader.offset} unexpected trailing bytes.")
    return CTranslate2Model(spec, revision, variables, aliases)


__all__ = ["MODEL_FILE", "CTranslate2FormatError", "CTranslate2Model", "model_files", "read_ctranslate2"]
