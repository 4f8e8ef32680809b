"""onnxruntime inference engine: a Caffe snapshot translated to ONNX, run by onnxruntime.

Gives the same numbers as the OpenCV dnn engine (within float32 rounding) and runs several
images per call.  onnxruntime and onnx are optional dependencies (``pip install
'depth_eval[fast]'``); they are imported only when an :class:`OnnxRuntimeEngine` is built.

Public API: :class:`OnnxRuntimeEngine`, :func:`cache_key`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from depth_eval import timings
from depth_eval.caffe.onnx.version import TRANSLATOR_VERSION
from depth_eval.errors import EngineUnavailableError, ShapeError, UnsupportedLayerError
from depth_eval.engines.base import DEPTH_OUTPUT, Engine, OutputRule
from depth_eval.engines.onnx_cache import Entry, cache_key, optimised_key

__all__ = ["OnnxRuntimeEngine", "cache_key", "cpu_plan"]

_INSTALL_HINT = "pip install 'depth_eval[fast]'"
# onnxruntime's log severities run 0 (verbose) to 4 (fatal): loading a cached file that it
# refuses logs an ERROR line of its own, which our one warning replaces.
_ORT_LOG_FATAL = 4


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise EngineUnavailableError(f"onnxruntime is not installed: {_INSTALL_HINT}") from None
    return onnxruntime


def _import_translator():
    try:
        from depth_eval.caffe.onnx import caffe_to_onnx
    except ImportError as error:
        if getattr(error, "name", None) and error.name.split(".")[0] == "onnx":
            raise EngineUnavailableError(f"onnx is not installed: {_INSTALL_HINT}") from None
        raise
    return caffe_to_onnx


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
        Intra-op threads; default 1 on the CPU with one pass per usable core at once
        (:func:`cpu_plan`), else every usable core.
    device : {"cpu", "cuda"}
        ``"cuda"`` runs on onnxruntime's CUDAExecutionProvider (CPU fallback for any node it
        cannot take) and needs an onnxruntime build that has it.
    cache : depth_eval.store.user_cache.BlobCache, optional
        Where to keep the translation and, on the CPU, onnxruntime's optimised graph of it
        (:mod:`depth_eval.engines.onnx_cache`), reused on later runs: the session is then
        built from the optimised graph, its weights mapped from the file.  Without a cache
        (or one that cannot be written) the translation is made in a temporary folder.
    cache_dir : Path, optional
        A cache folder, when no ``cache`` is given (a :class:`~depth_eval.store.user_cache.BlobCache`
        with its default size bound is made there).
    caffemodel_sha256 : str, optional
        The caffemodel's sha256 when the caller has it already (the run hashed it for the
        results store): the cache lookup then does not read the weights again.
    rule, log_encoded, extra_outputs
        As :class:`depth_eval.engines.base.Engine`.

    Attributes
    ----------
    info, input_name, input_shape, output_blob, prototxt_sha256, caffemodel_sha256
        As :class:`depth_eval.engines.base.Engine`; ``forward`` accepts any batch size N.
    model_path : Path or None
        The translation's graph in the cache (None without one, or if it could not be stored).
    optimised_path : Path or None
        The optimised graph in the cache, once there is one (CPU only).
    loaded_from_cache : bool
        True when the translation was skipped because the cache had it.
    optimised_from_cache : bool
        True when the session was built from the cached optimised graph.

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
    uses_cache = True

    def __init__(self, prototxt, caffemodel, output_blob: str | None = None,
                 rule: OutputRule = DEPTH_OUTPUT, log_encoded: bool = False,
                 threads: int | None = None, device: str = "cpu",
                 cache=None, cache_dir: Path | None = None,
                 caffemodel_sha256: str | None = None,
                 extra_outputs: tuple[OutputRule, ...] = ()):
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
        self.device, self._ort, self._providers = device, ort, providers
        self._threads, self.concurrent_forwards = (
            cpu_plan(threads) if device == "cpu" else (threads or usable_cores(), 1))
        self.model_path: Path | None = None
        self.optimised_path: Path | None = None
        self.loaded_from_cache = False
        self.optimised_from_cache = False
        if caffemodel_sha256:
            self.caffemodel_sha256 = caffemodel_sha256
        if cache is None and cache_dir is not None:
            from depth_eval.store.user_cache import BlobCache

            cache = BlobCache(cache_dir)
        session = None
        if cache is not None and cache.directory is not None:
            # A cached translation was checked when it was made: only the hash is needed.
            with timings.phase("hash"):
                weights_sha256 = self.caffemodel_sha256 or self.hash_weights()
            # One output: the key of earlier versions; several: their names, one per line.
            key = cache_key(self.prototxt_sha256, weights_sha256, "\n".join(self.output_blobs),
                            TRANSLATOR_VERSION)
            session = self._cached_session(cache, key)
        self._session = session or self._session_without_cache()
        inputs = self._session.get_inputs()
        names = [i.name for i in inputs]
        self._ort_input = self.input_name if self.input_name in names else names[0]
        # An int: a translation for a fixed batch (see _translation); a name: any batch.
        first = inputs[names.index(self._ort_input)].shape[0]
        self._fixed_batch = first if isinstance(first, int) else None

    def _options(self, optimise: bool):
        """Session options: full graph optimisation, or none (an optimised graph)."""
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle intra-op threads sleep instead of spinning: the evaluator's reading, scoring and
        # writing threads need those cores between forward passes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.device == "cpu":
            # Prepacking copies the weights (the inner products': nearly all of them) into
            # anonymous memory, 190 MB at its peak above the mapped file, and gained nothing
            # measurable here at one image per pass (107 vs 108 ms of CPU).  The one session
            # serves every concurrent pass, so there is one copy of the weights either way.
            options.add_session_config_entry("session.disable_prepacking", "1")
        return options

    def _open(self, path: Path, options):
        return self._ort.InferenceSession(str(path), sess_options=options,
                                          providers=self._providers)

    def _cached_session(self, cache, key: str):
        """The session from the cache: the optimised graph, else the translation (optimised
        and saved now), else a new translation; an entry that fails its checksums or does not
        load is said once and made again.  None when the cache has no usable entry and cannot
        take a new one."""
        translation = Entry(cache.directory, key)
        optimised = Entry(cache.directory, optimised_key(key, self._ort.__version__)) \
            if self.device == "cpu" else None
        if optimised is not None and self._trusted(cache, optimised, "optimised graph"):
            with timings.phase("session"):
                session = self._load_cached(cache, optimised, "optimised graph", optimise=False)
            if session is not None:
                optimised.touch()
                self.model_path = translation.graph if translation.exists() else None
                self.optimised_path, self.loaded_from_cache = optimised.graph, True
                self.optimised_from_cache = True
                return session
        if not cache.writable:
            optimised = None  # use what is there, write nothing
        session = None
        if self._trusted(cache, translation, "translation"):
            session = self._optimise(cache, translation, optimised)
            if session is None:
                self._damaged(cache, translation, "translation", "onnxruntime cannot load it")
            self.loaded_from_cache = session is not None
        if session is None and cache.writable:
            try:
                with timings.phase("translate"):
                    self._translate(translation)
            except OSError as error:  # disk full, removed under us: go on without the cache
                cache.failed(error)
                return None
            session = self._optimise(cache, translation, optimised)
            if session is None:  # the new translation does not load: say why
                session = self._open(translation.graph, self._options(optimise=True))
        if session is not None:
            translation.touch()
            self.model_path = translation.graph
            cache.evict(keep=translation.graph)
        return session

    def _trusted(self, cache, entry: Entry, what: str) -> bool:
        """Whether the cache has the entry and its files match their checksums (a damaged
        one is said and removed, so it is made again)."""
        if not entry.exists():
            return False
        with timings.phase("hash"):
            problem = entry.problem()
        if problem is None:
            return True
        self._damaged(cache, entry, what, problem)
        return False

    def _damaged(self, cache, entry: Entry, what: str, problem: str) -> None:
        if cache.writable:
            entry.remove()
            cache.report(f"{entry.graph}: cached {what} not used ({problem}); made again")
        else:
            cache.report(f"{entry.graph}: cached {what} not used ({problem}); the cache is "
                         "not written, so it is made in a temporary folder")

    def _load_cached(self, cache, entry: Entry, what: str, optimise: bool):
        """A session of a cached graph, onnxruntime's own log silenced (a file it refuses is
        one warning of ours, and made again); None when it does not load."""
        options = self._options(optimise=optimise)
        options.log_severity_level = _ORT_LOG_FATAL
        session = _try(self._open, entry.graph, options)
        if session is None:
            self._damaged(cache, entry, what, "onnxruntime cannot load it")
        return session

    def _optimise(self, cache, translation: Entry, optimised: Entry | None):
        """A session of the translation, fully optimised, the optimised graph saved as the
        ``optimised`` entry on the way; None if the translation does not load."""
        if optimised is not None:
            try:
                with timings.phase("optimise"), optimised.writing() as (temp, weights):
                    options = self._options(optimise=True)
                    options.optimized_model_filepath = str(temp)
                    # Saving says the graph is specific to this CPU (it is keyed so), and a
                    # translation it refuses is said by the caller: onnxruntime stays silent.
                    options.log_severity_level = _ORT_LOG_FATAL
                    for name, value in (
                            ("session.save_model_format", "ONNX"),
                            ("session.optimized_model_external_initializers_file_name",
                             weights.name),
                            ("session.optimized_model_external_initializers_min_size_in_bytes",
                             "1024")):
                        options.add_session_config_entry(name, value)
                    session = self._open(translation.graph, options)
                self.optimised_path = optimised.graph
                return session
            except Exception:  # translation unreadable, or the optimised graph unwritable
                pass
        with timings.phase("session"):
            options = self._options(optimise=True)
            options.log_severity_level = _ORT_LOG_FATAL
            return _try(self._open, translation.graph, options)

    def _translate(self, entry: Entry) -> None:
        """Translate the snapshot into ``entry``, its weights written straight from the mapped
        caffemodel (no copy of them is held)."""
        from depth_eval.caffe.onnx.external import ExternalData

        caffe_to_onnx = _import_translator()
        weights = self.read_weights()  # maps and checks the caffemodel
        with entry.writing() as (temp, weights_path):
            with open(weights_path, "wb") as stream:
                model = self._translation(caffe_to_onnx, weights, lambda: ExternalData(
                    stream, weights_path.name))
            del weights
            temp.write_bytes(model.SerializeToString())

    def _translation(self, caffe_to_onnx, weights, external=lambda: None):
        """The translation with a symbolic batch, or, for a network with a layer that computes
        along the batch axis, with the definition's own batch (the images' axis of the
        original's forward pass): :meth:`forward` then runs batches of that size."""
        outputs = list(self.output_blobs)
        try:
            return caffe_to_onnx(self.definition, weights, outputs, batch=None,
                                 external=external())
        except (UnsupportedLayerError, ShapeError) as symbolic:
            # (ShapeError: a blob of the definition's batch, a Parameter's, meets the symbolic
            # one where Caffe's shapes must be equal.)
            try:  # a failed translation has written no weights (they go out at the end)
                return caffe_to_onnx(self.definition, weights, outputs,
                                     batch=int(self.input_shape[0]), external=external())
            except (UnsupportedLayerError, ShapeError):
                raise symbolic from None

    def _session_without_cache(self):
        """Translate into a temporary folder and build the session from there (the weights
        mapped from the file, as from the cache); in memory if no folder can be written."""
        if not self.caffemodel_sha256:
            with timings.phase("hash"):
                self.hash_weights()
        try:
            with tempfile.TemporaryDirectory(prefix="depth_eval-",
                                             ignore_cleanup_errors=True) as folder:
                entry = Entry(folder, self.caffemodel_sha256)
                with timings.phase("translate"):
                    self._translate(entry)
                with timings.phase("session"):
                    # The session keeps the weights file mapped: removing its name is safe.
                    return self._open(entry.graph, self._options(optimise=True))
        except OSError:
            pass
        caffe_to_onnx = _import_translator()
        with timings.phase("translate"):
            weights = self.read_weights()
            model = self._translation(caffe_to_onnx, weights)
            del weights
            model_bytes = model.SerializeToString()
            del model
        with timings.phase("session"):
            return self._ort.InferenceSession(model_bytes, sess_options=self._options(True),
                                              providers=self._providers)

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
        fixed = self._fixed_batch
        if fixed is not None and len(batch) != fixed:
            if len(batch) % fixed:
                raise ValueError(f"input batch has {len(batch)} images; this network computes "
                                 f"along the batch axis and takes them {fixed} at a time")
            parts = [self._run(batch[i:i + fixed]) for i in range(0, len(batch), fixed)]
            results = tuple(np.concatenate(blobs) for blobs in zip(*parts))
        else:
            results = self._run(batch)
        return results if self.extra_info else results[0]

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self._session.run(list(self.output_blobs), {self._ort_input: batch}))

    def __repr__(self) -> str:
        return (f"OnnxRuntimeEngine(input={self.input_name!r} {self.input_shape}, "
                f"output={self.output_blob!r}, device={self.device!r})")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's share),
    else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def cpu_plan(threads: int | None = None) -> tuple[int, int]:
    """(intra-op threads per pass, passes at once) on the CPU.

    One thread per pass and one pass per usable core: the fewest CPU seconds per image, so the
    most images per second once every core is busy (bench/forward_settings.py: 2 cores, AVX-512,
    216-220 ms of CPU per image against 229-276 ms with two threads per pass, the inner
    products batched two images a pass no better at 219 ms).  ``threads`` above 1 runs one
    pass at a time with that many threads.
    """
    threads = threads or 1
    return threads, usable_cores() if threads == 1 else 1


def _try(open_session, path: Path, options):
    """``open_session(path, options)``, or None when onnxruntime cannot load the file."""
    try:
        return open_session(path, options)
    except Exception:  # onnxruntime's own exceptions: a damaged or foreign file
        return None
