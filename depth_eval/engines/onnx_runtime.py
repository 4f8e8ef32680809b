"""onnxruntime inference engine: a Caffe snapshot translated to ONNX, run by onnxruntime.

Gives the same numbers as the OpenCV dnn engine (within float32 rounding) and runs several
images per call.  onnxruntime and onnx are optional dependencies (``pip install
'depth_eval[fast]'``); they are imported only when an :class:`OnnxRuntimeEngine` is built.

Public API: :class:`OnnxRuntimeEngine`, :func:`cache_key`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import EngineUnavailableError
from ..files import write_atomic
from .base import DEPTH_OUTPUT, Engine, OutputRule

__all__ = ["OnnxRuntimeEngine", "cache_key"]

_INSTALL_HINT = "pip install 'depth_eval[fast]'"


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise EngineUnavailableError(f"onnxruntime is not installed: {_INSTALL_HINT}") from None
    return onnxruntime


def _import_translator():
    try:
        from ..caffe import onnx as onnx_translate
    except ImportError as error:
        if getattr(error, "name", None) and error.name.split(".")[0] == "onnx":
            raise EngineUnavailableError(f"onnx is not installed: {_INSTALL_HINT}") from None
        raise
    return onnx_translate


def cache_key(prototxt_sha256: str, caffemodel_sha256: str, output_blob: str,
              translator_version: str) -> str:
    """SHA-256 (hex) identifying one translation: definition, weights, output, translator."""
    digest = hashlib.sha256()
    for part in (prototxt_sha256.encode(), caffemodel_sha256.encode(), output_blob.encode("utf-8"),
                 translator_version.encode("utf-8")):
        digest.update(len(part).to_bytes(8, "little"))  # unambiguous concatenation
        digest.update(part)
    return digest.hexdigest()


class OnnxRuntimeEngine(Engine):
    """A Caffe deploy network + snapshot run by onnxruntime, producing one output blob.

    Parameters
    ----------
    prototxt, caffemodel : str or Path
        The deploy definition and the trained weights.
    output_blob : str, optional
        Caffe blob name to compute (for a blob rewritten in place, the final value); by
        default the output :func:`depth_eval.engines.base.describe_network` finds.
    threads : int, optional
        Intra-op threads; default 1 on the CPU (one pass per core runs concurrently), else
        ``os.cpu_count()``.
    device : {"cpu", "cuda"}
        ``"cuda"`` runs on onnxruntime's CUDAExecutionProvider (CPU fallback for any node it
        cannot take) and needs an onnxruntime build that has it.
    cache_dir : Path, optional
        Where to keep translated models (``<sha256>.onnx``), reused on later runs.
    rule, log_encoded
        As :class:`depth_eval.engines.base.Engine`.

    Attributes
    ----------
    info, input_name, input_shape, output_blob, prototxt_sha256, caffemodel_sha256
        As :class:`depth_eval.engines.base.Engine`; ``forward`` accepts any batch size N.
    model_path : Path or None
        The cached ``.onnx`` file, when ``cache_dir`` is given.
    loaded_from_cache : bool
        True when the translation was skipped because the cache had it.

    Raises
    ------
    EngineUnavailableError
        onnxruntime (or onnx, needed to translate) is not installed, or CUDA was asked for
        and is not available.
    depth_eval.errors.UnsupportedLayerError
        The network uses a layer the translation does not implement.
    ValueError
        Missing or mis-shaped weights, unknown output blob, unknown device.
    """

    engine = "onnxruntime"
    devices = ("cpu", "cuda")

    def __init__(self, prototxt, caffemodel, output_blob: str | None = None,
                 rule: OutputRule = DEPTH_OUTPUT, log_encoded: bool = False,
                 threads: int | None = None, device: str = "cpu",
                 cache_dir: Path | None = None, extra_outputs: tuple[OutputRule, ...] = ()):
        ort = _import_onnxruntime()
        if device == "cpu":
            providers = ["CPUExecutionProvider"]
        elif device == "cuda":
            available = ort.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise EngineUnavailableError(
                    f"device 'cuda' needs onnxruntime's CUDAExecutionProvider, which this "
                    f"onnxruntime build lacks (available: {', '.join(available)}); install "
                    f"onnxruntime-gpu or use device 'cpu'")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            raise ValueError(f"unknown device {device!r} (expected 'cpu' or 'cuda')")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be positive, got {threads}")

        super().__init__(prototxt, caffemodel, output_blob, rule, log_encoded, extra_outputs)
        self.device = device
        self.model_path: Path | None = None
        self.loaded_from_cache = False
        translator = _import_translator()
        if cache_dir is not None:
            # A cached translation was checked when it was made: only the hash is needed.
            # One output: the key of earlier versions; several: their names, one per line.
            key = cache_key(self.prototxt_sha256, self.hash_weights(),
                            "\n".join(self.output_blobs), translator.TRANSLATOR_VERSION)
            self.model_path = Path(cache_dir) / f"{key}.onnx"

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # On the CPU, one thread per forward pass and one pass per core (executor.stream).
        options.intra_op_num_threads = threads or (1 if device == "cpu" else os.cpu_count() or 1)
        # onnxruntime sessions may run concurrently; with one thread each, one run per core
        # keeps every core busy (2 cores: 1.9x one two-threaded run, measured).
        self.concurrent_forwards = (os.cpu_count() or 1) if (
            device == "cpu" and options.intra_op_num_threads == 1) else 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle intra-op threads sleep instead of spinning: the evaluator's reading, scoring and
        # writing threads need those cores between forward passes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")

        self._session = None
        if self.model_path is not None and self.model_path.is_file():
            try:
                self._session = ort.InferenceSession(str(self.model_path), sess_options=options,
                                                     providers=providers)
                self.loaded_from_cache = True
            except Exception:  # unreadable cache entry (e.g. another onnxruntime): rebuild it
                self._session = None
        if self._session is None:
            weights = self.read_weights()  # parses, hashes and checks the caffemodel
            model = translator.caffe_to_onnx(self.definition, weights, list(self.output_blobs),
                                             batch=None)
            del weights
            model_bytes = model.SerializeToString()
            del model
            if self.model_path is not None:
                self.model_path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self.model_path, model_bytes)
            self._session = ort.InferenceSession(model_bytes, sess_options=options,
                                                 providers=providers)
        names = [i.name for i in self._session.get_inputs()]
        self._ort_input = self.input_name if self.input_name in names else names[0]

    def forward(self, batch: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run preprocessed images (N x C x H x W float32) and return the output blob.

        Returns
        -------
        np.ndarray or tuple of np.ndarray
            N x C_out x h x w float32 (the blob's own rank for a non-spatial output); with extra
            outputs, one such array per blob of :attr:`output_blobs`, from one session run.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        expected = tuple(self.input_shape[1:])
        if batch.ndim != len(self.input_shape) or batch.shape[1:] != expected:
            raise ValueError(f"input batch has shape {batch.shape}, the network expects "
                             f"(N, {', '.join(map(str, expected))})")
        if not self.extra_info:
            (result,) = self._session.run([self.output_blob], {self._ort_input: batch})
            return result
        return tuple(self._session.run(list(self.output_blobs), {self._ort_input: batch}))

    def __repr__(self) -> str:
        return (f"OnnxRuntimeEngine(input={self.input_name!r} {self.input_shape}, "
                f"output={self.output_blob!r}, device={self.device!r})")
