"""Read a PyTorch checkpoint's tensors without torch, from either of its two formats.

A `.pth` is a pickle whose tensors point at raw storages: in the legacy format the storages follow the
pickle in the same file; in the zip format (torch >= 1.6) each is a member `archive/data/<key>`.
Unpickling is restricted to the few names a state dict needs (OrderedDict, the tensor rebuild function,
storage types): any other global is refused, so a checkpoint cannot run code. Only little-endian
float/int storages are supported. This module builds no model.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(_DTYPES[name])


class _Storage:
    """A storage's dtype and key; its bytes are filled in once read."""

    def __init__(self, dtype: np.dtype[Any], key: str) -> None:
        self.dtype = dtype
        self.key = key
        self.array: npt.NDArray[Any] | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def numpy(self) -> npt.NDArray[Any]:
        data = self.storage.array
        if data is None:
            raise ValueError(f"storage {self.storage.key} was never read")
        item = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view)


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any) -> _Tensor:
    return _Tensor(storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name in {"_rebuild_tensor", "_rebuild_tensor_v2"}:
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"the checkpoint refers to {module}.{name}, which a state dict never needs")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key = pid[0], pid[1], str(pid[2])
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self.storages.setdefault(key, _Storage(storage_type.dtype, key))


def _legacy(data: bytes) -> dict[str, Any]:
    stream = io.BytesIO(data)
    storages: dict[str, _Storage] = {}
    if _Unpickler(stream, storages).load() != LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint (wrong magic number)")
    _Unpickler(stream, storages).load()  # protocol version
    _Unpickler(stream, storages).load()  # system information
    state = _Unpickler(stream, storages).load()
    keys = _Unpickler(stream, storages).load()
    for key in keys:
        (count,) = struct.unpack("<q", stream.read(8))
        storage = storages[str(key)]
        raw = stream.read(count * storage.dtype.itemsize)
        storage.array = np.frombuffer(raw, storage.dtype.newbyteorder("<"))
    return dict(state)


def _zipped(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/")[0]
        storages: dict[str, _Storage] = {}
        state = _Unpickler(io.BytesIO(archive.read(f"{root}/data.pkl")), storages).load()
        for key, storage in storages.items():
            storage.array = np.frombuffer(archive.read(f"{root}/data/{key}"), storage.dtype.newbyteorder("<"))
    return dict(state)


def load_state_dict(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Name → array for every tensor in the checkpoint at `path`."""
    state = _zipped(path) if zipfile.is_zipfile(path) else _legacy(path.read_bytes())
    return {name: value.numpy() for name, value in state.items() if isinstance(value, _Tensor)}
