"""Read PyTorch state dicts saved in the legacy (pre-zip) format, without torch.

``torch.load`` unpickles arbitrary objects, so loading a ``.pth`` with it (or plain ``pickle``)
runs whatever code the file names. This reader resolves only the handful of globals a state dict
needs (``OrderedDict``, ``_rebuild_tensor_v2``, the typed storages) and refuses everything else.

Layout of the legacy format: five consecutive pickles — magic number, protocol version, system
info, the state dict (tensors are ``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` whose
storages are persistent ids ``('storage', torch.FloatStorage, key, location, numel, None)``) and
the sorted list of storage keys — then each storage's raw little-endian data, prefixed by its
element count as an int64.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixdex.errors import ModelError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> little-endian numpy dtype
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class PthError(ModelError):
    """The file is not a legacy PyTorch state dict this reader accepts."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return _STORAGE_DTYPES[self.name]


@dataclass(slots=True)
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """A tensor whose storage bytes come after the pickles; materialised once they are read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only what a state dict uses; any other global is an error, never imported."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise PthError(f"refusing to load global {module}.{name}: not part of a plain state dict")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise PthError(f"unexpected persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid[:5]
        if not isinstance(stype, _StorageType) or len(pid) > 5 and pid[5] is not None:
            raise PthError(f"unsupported storage {pid!r:.80}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(str(key), stype.dtype, int(numel))
        return storage


#: Opcodes that store into the unpickler's memo with an explicit index.
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _check_opcodes(buf: io.BytesIO) -> None:
    """Walk the next pickle's opcodes (nothing is built or run) and refuse memo indexes beyond
    the number of opcodes: the C unpickler grows its memo array to the largest index, so a
    crafted LONG_BINPUT 10^9 costs gigabytes for a 5-byte instruction. A real state dict's
    indexes count up from 0."""
    start = buf.tell()
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(buf)):
            if opcode.name in _MEMO_PUTS and (not isinstance(arg, int) or arg > count):
                raise PthError(f"corrupt pickle: memo index {arg!r:.20} at opcode {count}")
    except PthError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed opcode stream
        raise PthError(f"corrupt pickle: {type(exc).__name__}: {exc}") from None
    finally:
        buf.seek(start)


def _load_pickle(buf: io.BytesIO) -> tuple[Any, dict[str, _Storage]]:
    _check_opcodes(buf)
    unpickler = _RestrictedUnpickler(buf)
    try:
        return unpickler.load(), unpickler.storages
    except PthError:
        raise
    except Exception as exc:  # malformed pickles raise anything from EOFError to KeyError
        raise PthError(f"corrupt pickle: {type(exc).__name__}: {exc}") from None


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format ``.pth`` state dict as numpy arrays (name -> array)."""
    data = Path(path).read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        raise PthError(f"{path}: zip-based torch.save format is not supported (legacy only)")
    return parse_state_dict(data)


def parse_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """As :func:`read_state_dict`, from the file's bytes."""
    buf = io.BytesIO(data)
    header = [_load_pickle(buf)[0] for _ in range(3)]
    if header[0] != MAGIC_NUMBER:
        raise PthError("not a legacy PyTorch file (bad magic number)")
    if header[1] != PROTOCOL_VERSION:
        raise PthError(f"unsupported PyTorch protocol version {header[1]!r}")
    if not isinstance(header[2], dict) or not header[2].get("little_endian", False):
        raise PthError("only little-endian files are supported")
    state, storages = _load_pickle(buf)
    keys, _ = _load_pickle(buf)
    if not isinstance(state, dict) or set(keys) != set(storages):
        raise PthError("not a state dict, or storage keys do not match the tensors")

    view = memoryview(data)
    pos = buf.tell()
    for key in keys:
        storage = storages[key]
        if pos + 8 > len(data):
            raise PthError("truncated file: storage data missing")
        count = int(np.frombuffer(view[pos : pos + 8], "<i8")[0])
        pos += 8
        nbytes = count * storage.dtype.itemsize
        if count != storage.numel or pos + nbytes > len(data):
            raise PthError(f"storage {key}: size mismatch or truncated data")
        storage.data = np.frombuffer(view[pos : pos + nbytes], storage.dtype)
        pos += nbytes

    out: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise PthError(f"{name}: not a tensor")
        out[str(name)] = _materialise(name, ref)
    return out


def _materialise(name: str, ref: _TensorRef) -> np.ndarray:
    """Apply offset/size/stride to the flat storage (a view), then copy to an owned array."""
    flat = ref.storage.data
    assert flat is not None
    if len(ref.size) != len(ref.stride) or any(s < 0 for s in ref.stride):
        raise PthError(f"{name}: unsupported size/stride {ref.size!r:.80}/{ref.stride!r:.80}")
    if any(not isinstance(n, int) or n < 0 for n in (*ref.size, *ref.stride, ref.offset)):
        raise PthError(f"{name}: size, stride and offset must be non-negative integers")
    # A zero stride repeats elements: a crafted file could ask for a 10^12-element copy of a
    # one-element storage. A state dict's tensors never hold more elements than their storage.
    if math.prod(ref.size) > flat.size:
        raise PthError(f"{name}: {math.prod(ref.size):,} elements in a storage of {flat.size:,}")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or (all(ref.size) and last >= flat.size):
        raise PthError(f"{name}: tensor exceeds its storage")
    itemsize = flat.dtype.itemsize
    arr = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.size,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(arr, dtype=flat.dtype.newbyteorder("="), order="C", copy=True)
