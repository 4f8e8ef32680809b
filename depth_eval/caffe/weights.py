"""A caffemodel's weights without copying them: the file memory-mapped, each blob's values a
numpy array over the mapped bytes.

A caffemodel is a protobuf ``NetParameter`` whose bulk (over 99% of a thesis snapshot) is the
packed float arrays of its blobs.  Reading the file and parsing it with protobuf holds two
copies of those floats, and turning them into numpy arrays a third.  Here the file is mapped,
the message structure is walked with a minimal wire-format reader down to each blob, and each
blob's packed ``data`` (or ``double_data``) is taken as a view of the mapped bytes.  Everything
else (names, shapes, parameters, unknown fields) goes through protobuf with the values left out,
so the messages are checked as a full parse checks them, and the result is an ordinary
``NetParameter`` whose blobs carry their shapes but no values.

Public API: :class:`CaffeWeights`.
"""

from __future__ import annotations

import hashlib
import mmap
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from depth_eval.errors import CaffeFormatError
from depth_eval.inputs.limits import open_regular
from depth_eval.caffe.proto import NetParameter, upgrade_v1

__all__ = ["CaffeWeights"]

# NetParameter field -> (name, blobs) field numbers of its layer message: ``layer`` (100,
# LayerParameter) and the legacy ``layers`` (2, V1LayerParameter), as caffe.proto numbers them.
_LAYER_FIELDS = {100: (1, 7), 2: (4, 6)}
# BlobProto value fields -> (little-endian dtype, wire type of one unpacked value): ``data`` and
# ``double_data``; ``diff`` and ``double_diff`` (gradients) are never needed and are dropped.
_VALUES = {5: ("<f4", 5), 8: ("<f8", 1)}
_DROPPED = {6: ("<f4", 5), 9: ("<f8", 1)}
_WIRE_VARINT, _WIRE_FIXED64, _WIRE_BYTES, _WIRE_GROUP, _WIRE_END, _WIRE_FIXED32 = 0, 1, 2, 3, 4, 5


class _Corrupt(Exception):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _Corrupt("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Corrupt("varint longer than 10 bytes")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(buf, start: int, end: int):
    """``(number, wire type, value start, value end, field start)`` of each field in
    ``buf[start:end]``; raises _Corrupt where protobuf's parser would fail."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Corrupt("field number 0")
        if wire == _WIRE_VARINT:
            value_end = _varint(buf, pos, end)[1]
        elif wire == _WIRE_FIXED64:
            value_end = pos + 8
        elif wire == _WIRE_FIXED32:
            value_end = pos + 4
        elif wire == _WIRE_BYTES:
            length, pos = _varint(buf, pos, end)
            value_end = pos + length
        elif wire == _WIRE_GROUP:
            value_end = _group_end(buf, pos, end, number)
        else:
            raise _Corrupt(f"wire type {wire}")
        if value_end > end:
            raise _Corrupt("field runs past the end of its message")
        yield number, wire, pos, value_end, field_start
        pos = value_end


def _group_end(buf, pos: int, end: int, number: int) -> int:
    """Where a (deprecated) group that started before ``pos`` ends, its end tag included."""
    while pos < end:
        key, after = _varint(buf, pos, end)
        if key == (number << 3 | _WIRE_END):
            return after
        pos = next(_fields(buf, pos, end))[3]
    raise _Corrupt("unterminated group")


def _submessage(number: int, body: bytes) -> bytes:
    return _encode_varint(number << 3 | _WIRE_BYTES) + _encode_varint(len(body)) + body


def _values(buf, chunks: list, dtype: str) -> np.ndarray:
    """One blob's values from its chunks (packed runs or single values) as float32."""
    size = np.dtype(dtype).itemsize
    parts = [np.frombuffer(buf, dtype, (end - start) // size, start) for start, end in chunks]
    array = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return array if array.dtype == np.float32 else array.astype(np.float32)


def _blob(buf, start: int, end: int) -> tuple[bytes, np.ndarray | None]:
    """A BlobProto's bytes without its values, and its values (``double_data`` first, as Caffe
    reads them), or None without any."""
    kept = bytearray()
    chunks: dict[int, list] = {5: [], 8: []}
    for number, wire, value_start, value_end, field_start in _fields(buf, start, end):
        dtype, single_wire = _VALUES.get(number) or _DROPPED.get(number) or (None, None)
        if dtype is None or wire not in (_WIRE_BYTES, single_wire):
            kept += buf[field_start:value_end]  # a mismatched wire type stays: protobuf decides
            continue
        if (value_end - value_start) % np.dtype(dtype).itemsize:
            raise _Corrupt("packed values of a partial size")
        if number in chunks:
            chunks[number].append((value_start, value_end))
    for number in (8, 5):
        if chunks[number]:
            return bytes(kept), _values(buf, chunks[number], _VALUES[number][0])
    return bytes(kept), None


def _layer(buf, start: int, end: int, blobs_field: int) -> tuple[bytes, list]:
    kept, values = bytearray(), []
    for number, wire, value_start, value_end, field_start in _fields(buf, start, end):
        if number == blobs_field and wire == _WIRE_BYTES:
            body, blob_values = _blob(buf, value_start, value_end)
            kept += _submessage(blobs_field, body)
            values.append(blob_values)
        else:
            kept += buf[field_start:value_end]
    return bytes(kept), values


class CaffeWeights:
    """The weights of one caffemodel, memory-mapped.

    Parameters
    ----------
    path : str or Path
        The ``.caffemodel``.

    Attributes
    ----------
    path : Path
    size : int
        The file's size in bytes.
    net : NetParameter
        The file's messages with every blob's values left out (shapes kept); a legacy
        ``layers`` (V1) file is upgraded to ``layer``.

    Raises
    ------
    OSError
        The file cannot be read, or is not a regular file (:func:`depth_eval.inputs.limits.open_regular`).
    CaffeFormatError
        The file is not a well-formed NetParameter (corrupt or truncated).

    Notes
    -----
    The arrays :meth:`values` returns are read-only views of the file: they stay valid as long
    as they (or this object) are referenced, and the mapping is released with the last one.
    A file cut short by another process while mapped ends this one with SIGBUS when a lost
    page is read (as any mapped reader: numpy's memmap, onnxruntime's external data); Caffe
    writes each snapshot to a new file, and the mapping lives only while the weights are
    checked or translated.
    """

    def __init__(self, path):
        self.path = Path(path)
        with open_regular(self.path) as stream:
            self.size = stream.seek(0, 2)
            self._buffer = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) \
                if self.size else b""
        try:
            self.net, self._values = self._parse()
        except (_Corrupt, DecodeError, RuntimeError):
            raise CaffeFormatError(f"{self.path}: caffemodel is corrupt or truncated "
                                   "(protobuf cannot parse it)") from None

    def _parse(self):
        buf, kept, layer_values = self._buffer, bytearray(), {2: [], 100: []}
        for number, wire, value_start, value_end, field_start in _fields(buf, 0, len(buf)):
            if number in _LAYER_FIELDS and wire == _WIRE_BYTES:
                body, values = _layer(buf, value_start, value_end, _LAYER_FIELDS[number][1])
                kept += _submessage(number, body)
                layer_values[number].append(values)
            else:
                kept += buf[field_start:value_end]
        net = NetParameter.FromString(bytes(kept))
        # Layers in file order, as upgrade_v1 keeps them; the last of a repeated name wins,
        # as the translation's lookup by name does.
        values = {layer.name: blobs for layer, blobs in zip(net.layers, layer_values[2])}
        values.update({layer.name: blobs for layer, blobs in zip(net.layer, layer_values[100])})
        return upgrade_v1(net), values

    def values(self, layer_name: str) -> list[np.ndarray | None]:
        """The flat float32 values of each blob of layer ``layer_name`` (None: no values)."""
        return list(self._values.get(layer_name, []))

    def sha256(self) -> str:
        """sha256 (hex) of the file's bytes, from the mapping in one call (no copy; the GIL is
        released for the whole hash)."""
        return hashlib.sha256(self._buffer).hexdigest()
