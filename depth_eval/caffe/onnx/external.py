"""Initializers stored outside the graph: ONNX external data, written as the model is built.

A thesis network's weights are ~280 MB; kept in the graph they are copied into the protobuf,
serialised, and copied again by onnxruntime when it parses the file.  Written to a file beside
the graph instead (each tensor's offset aligned to a page), the graph stays a few kilobytes and
onnxruntime maps the weights from the file rather than reading them.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

# Tensors this small stay in the graph (a page each would waste more than they weigh).
MIN_EXTERNAL_BYTES = 1024
# Each external tensor starts on a multiple of this (the page size; 64 KiB also covers Windows'
# allocation granularity), so onnxruntime can map it without a copy.
ALIGNMENT = 65536


class ExternalData:
    """Where :meth:`store` writes initializers: a binary stream and the name the graph gives it.

    Parameters
    ----------
    stream : binary file
        Open for writing, at offset 0.
    location : str
        The file's name relative to the graph's folder (what the graph records).
    """

    def __init__(self, stream, location: str):
        self.stream, self.location, self.offset = stream, location, 0

    def store(self, tensor: TensorProto, array: np.ndarray) -> bool:
        """Write ``array`` (little-endian) and point ``tensor`` at it; False for a small one
        (then the caller embeds it)."""
        if array.nbytes < MIN_EXTERNAL_BYTES:
            return False
        padding = -self.offset % ALIGNMENT
        if padding:
            self.stream.write(bytes(padding))
            self.offset += padding
        data = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
        self.stream.write(data.reshape(-1).view(np.uint8))  # straight from the caller's memory
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(self.offset)),
                           ("length", str(data.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.offset += data.nbytes
        return True
