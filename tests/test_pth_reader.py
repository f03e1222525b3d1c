"""The torch-free .pth reader on the real shipped weights, on hand-made files with strided views,
and against pickles that try to run code."""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from pixdex.models.classifier import weights_file
from pixdex.models.pth import MAGIC_NUMBER, PROTOCOL_VERSION, PthError, read_state_dict

SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 4}}


@pytest.fixture(scope="module")
def lite0_path() -> Path:
    return weights_file("efficientnet-lite0")


@pytest.fixture(scope="module")
def lite0(lite0_path: Path) -> dict[str, np.ndarray]:
    return read_state_dict(lite0_path)


def test_real_state_dict_shapes_and_dtypes(lite0: dict[str, np.ndarray]) -> None:
    assert len(lite0) == 296
    assert lite0["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert lite0["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert lite0["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert lite0["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert lite0["_fc.weight"].shape == (1000, 1280)
    assert lite0["_fc.bias"].shape == (1000,)
    assert lite0["_bn0.num_batches_tracked"].shape == ()
    assert lite0["_bn0.num_batches_tracked"].dtype == np.int64
    floats = [v for k, v in lite0.items() if not k.endswith("num_batches_tracked")]
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in floats)
    assert all(np.isfinite(v).all() for v in floats)
    assert all((v >= 0).all() for k, v in lite0.items() if k.endswith("running_var"))


def test_real_values_are_the_files_bytes(lite0_path: Path, lite0: dict[str, np.ndarray]) -> None:
    """Located independently: the weights were converted from TensorFlow, so each storage holds
    the TF layout (conv HWIO, dense (in, out)) and the tensors are strided views of it. The
    storage's bytes sit in the file right after its int64 element count, and with the pickles
    they account for every byte of the file."""
    raw = lite0_path.read_bytes()
    tf_layout = {
        "_conv_stem.weight": (2, 3, 1, 0),
        "_blocks.1._expand_conv.weight": (2, 3, 1, 0),
        "_blocks.9._depthwise_conv.weight": (2, 3, 1, 0),
        "_fc.weight": (1, 0),
        "_blocks.7._bn1.running_mean": (0,),
    }
    for name, axes in tf_layout.items():
        arr = lite0[name]
        pos = raw.find(arr.transpose(axes).tobytes())
        assert pos > 0, name
        assert struct.unpack("<q", raw[pos - 8 : pos])[0] == arr.size
        assert raw.find(arr.transpose(axes).tobytes(), pos + 1) == -1
    stem = lite0["_conv_stem.weight"]
    pos = raw.find(stem.transpose(2, 3, 1, 0).tobytes())
    # weight[o=1, i=2, kh=0, kw=1] is float number (kh*3 + kw)*96 + i*32 + o of the storage
    (value,) = struct.unpack("<f", raw[pos + 4 * (96 + 64 + 1) : pos + 4 * (96 + 64 + 2)])
    assert stem[1, 2, 0, 1] == value
    buf = io.BytesIO(raw)
    for _ in range(5):
        pickletools.dis(buf, out=io.StringIO())
    total = buf.tell() + sum(8 + v.nbytes for v in lite0.values())
    assert total == len(raw)  # no storage is shared or padded in this file


def _fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Stand-ins so the standard pickler writes the same globals torch.save writes."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    class LongStorage:
        pass

    def _rebuild_tensor_v2(*args):  # pragma: no cover - never called, only referenced
        raise AssertionError

    for cls in (FloatStorage, LongStorage):
        cls.__module__, cls.__qualname__ = "torch", cls.__name__
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, torch.LongStorage, torch._utils = FloatStorage, LongStorage, utils
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return types.SimpleNamespace(torch=torch, rebuild=_rebuild_tensor_v2)


class _StorageRef:
    def __init__(self, key: str, stype: type, data: np.ndarray) -> None:
        self.key, self.stype, self.data = key, stype, data


class _TensorSpec:
    def __init__(self, rebuild, storage, offset, size, stride) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())
        self.rebuild = rebuild

    def __reduce__(self):
        return self.rebuild, self.args


def _legacy_file(state: dict, storages: list[_StorageRef], tail: bytes = b"") -> bytes:
    """Write the legacy layout the way torch.save does (protocol 2, persistent ids)."""
    out = io.BytesIO()
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION, SYS_INFO):
        pickle.dump(header, out, protocol=2)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _StorageRef):
                return ("storage", obj.stype, obj.key, "cpu", obj.data.size, None)
            return None

    Pickler(out, protocol=2).dump(collections.OrderedDict(state))
    pickle.dump(sorted(s.key for s in storages), out, protocol=2)
    for s in sorted(storages, key=lambda s: s.key):
        out.write(struct.pack("<q", s.data.size))
        out.write(s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
    return out.getvalue() + tail


def test_strides_offsets_and_shared_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_torch(monkeypatch)
    flat = np.arange(24, dtype=np.float32) * 0.5
    st = _StorageRef("1", fake.torch.FloatStorage, flat)
    longs = _StorageRef("2", fake.torch.LongStorage, np.array([7, -3], np.int64))
    state = {
        "plain": _TensorSpec(fake.rebuild, st, 0, (2, 3, 4), (12, 4, 1)),
        "transposed": _TensorSpec(fake.rebuild, st, 0, (4, 6), (1, 4)),
        "offset_view": _TensorSpec(fake.rebuild, st, 5, (3,), (2,)),
        "scalar": _TensorSpec(fake.rebuild, longs, 1, (), ()),
    }
    path = tmp_path / "synthetic.pth"
    path.write_bytes(_legacy_file(state, [st, longs]))
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need it
    got = read_state_dict(path)
    np.testing.assert_array_equal(got["plain"], flat.reshape(2, 3, 4))
    np.testing.assert_array_equal(got["transposed"], flat.reshape(6, 4).T)
    np.testing.assert_array_equal(got["offset_view"], np.array([2.5, 3.5, 4.5], np.float32))
    assert got["scalar"].dtype == np.int64 and int(got["scalar"]) == -3
    assert got["transposed"].flags.c_contiguous and got["transposed"].flags.writeable


def test_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    out = io.BytesIO()
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION, SYS_INFO):
        pickle.dump(header, out, protocol=2)
    pickle.dump({"weight": Evil()}, out, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(out.getvalue())
    with pytest.raises(PthError, match=r"refusing to load global (posix|os|nt)\.system"):
        read_state_dict(path)
    assert not marker.exists()

    # also when the very first pickle (the magic number) is the payload
    path.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(PthError, match="refusing"):
        read_state_dict(path)
    assert not marker.exists()


def test_truncated_and_foreign_files(tmp_path: Path, lite0_path: Path) -> None:
    raw = lite0_path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(PthError, match="truncated"):
        read_state_dict(cut)
    cut.write_bytes(raw[:30000])  # inside the state-dict pickle
    with pytest.raises(PthError, match="corrupt pickle"):
        read_state_dict(cut)
    other = tmp_path / "other.pth"
    other.write_bytes(pickle.dumps(12345, protocol=2) * 3)
    with pytest.raises(PthError, match="magic"):
        read_state_dict(other)
