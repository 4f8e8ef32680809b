"""Inference engines, by name: each loads a Caffe snapshot and runs its forward pass.

Adding an engine is one module with an :class:`~depth_eval.engines.base.Engine` subclass and
one line in ``ENGINES``.  Modules are imported only when their engine is used, so an engine's
optional packages (onnxruntime) cost nothing to the others.
"""

from __future__ import annotations

import os
from pathlib import Path

from depth_eval.errors import ShapeError, SnapshotError, UnsupportedLayerError
from depth_eval.inputs import limits
from depth_eval.registry import resolve
from depth_eval.store.user_cache import BlobCache


# --engine name -> "module:class"; the first is the default (the reference).
ENGINES = {
    "opencv": "depth_eval.engines.opencv:OpenCVEngine",
    "onnxruntime": "depth_eval.engines.onnx_runtime:OnnxRuntimeEngine",
}
DEFAULT_ENGINE = next(iter(ENGINES))


def engine_class(name: str):
    """The Engine subclass registered as ``name``."""
    return resolve(ENGINES[name])


def devices(name: str) -> tuple[str, ...]:
    """The devices engine ``name`` can run on."""
    return engine_class(name).devices


def open_snapshot(engine_settings, rule, snapshot, extra_rules=(), cache=None, hasher=None,
                  warn=None):
    """Load one found snapshot (:class:`depth_eval.inputs.discover.Snapshot`) into the chosen
    engine; raises SnapshotError when it cannot.

    ``cache``: the user cache (engines that use one); ``hasher``: the run's FileHasher, whose
    caffemodel hash the engine then need not compute again; ``warn`` takes a one-line warning
    (a network with large activations).
    """
    if snapshot.problem is not None:
        raise SnapshotError(f"{snapshot.caffemodel}: {snapshot.problem}; rename the file")
    # The weights first: a dangling link or a loop is named as such, not as a missing prototxt.
    if not snapshot.caffemodel.exists():  # a dangling link or a loop (it was listed)
        raise SnapshotError(f"{snapshot.caffemodel}: cannot read (is "
                            f"{limits.describe(snapshot.caffemodel)})")
    if snapshot.prototxt is None:
        raise SnapshotError(f"{snapshot.caffemodel}: no {snapshot.name}.prototxt beside it and "
                            "no --prototxt given; snapshot skipped")
    try:
        known = hasher(snapshot.caffemodel) if hasher is not None else None
    except OSError as error:  # the engine would say the same when reading it
        raise SnapshotError(f"{snapshot.caffemodel}: cannot read "
                            f"({error.strerror or error})") from None
    try:
        return load_engine(engine_settings, snapshot.prototxt, snapshot.caffemodel, rule,
                            extra_rules, cache=cache, caffemodel_sha256=known, warn=warn)
    except OSError as error:
        raise SnapshotError(f"{error.filename or snapshot.caffemodel}: "
                            f"{error.strerror or error}") from None


def user_cache(engine_settings, warn=None):
    """The user cache (:class:`depth_eval.store.user_cache.BlobCache` at ``--cache-dir``) for
    an engine that keeps derived files there, else None."""
    if not engine_class(engine_settings.name).uses_cache:
        return None
    return BlobCache(engine_settings.cache_dir, warn=warn)


def load_engine(settings, prototxt: Path, caffemodel: Path, rule, extra_rules=(), cache=None,
                caffemodel_sha256: str | None = None, warn=None):
    """Load one snapshot into the engine the settings name.

    Parameters
    ----------
    settings : depth_eval.settings.EngineSettings
    prototxt, caffemodel : Path
    rule : depth_eval.engines.base.OutputRule
        What the task reads (``settings.output_blob`` overrides its blob).
    extra_rules : tuple of OutputRule
        Further outputs of the same forward pass (joint evaluations); ``forward`` then
        returns a tuple.
    cache : depth_eval.store.user_cache.BlobCache, optional
        The user cache, for an engine that ``uses_cache``.
    caffemodel_sha256 : str, optional
        The caffemodel's sha256 if the run computed it already (not read again for the cache).
    warn : callable, optional
        Called with one line when the network's activations are large but fit in memory.

    Raises
    ------
    SnapshotError
        The files cannot be read, parsed, matched or run, or the forward pass would need more
        memory than the machine has available (the message names the file).
    EngineUnavailableError
        The engine's packages (or the device) are missing.
    """
    warning = check_memory(prototxt, caffemodel, settings.batch)
    if warning and warn is not None:
        warn(warning)
    try:
        engine = engine_class(settings.name)(
            prototxt, caffemodel, settings.output_blob, rule=rule,
            log_encoded=settings.log_encoded, device=settings.device,
            cache=cache, caffemodel_sha256=caffemodel_sha256, extra_outputs=tuple(extra_rules))
    except UnsupportedLayerError as error:  # raised without the file's name
        raise SnapshotError(f"{caffemodel}: {error}") from None
    except SnapshotError:
        raise
    except ValueError as error:  # a layer or weights an engine's translation cannot take
        raise SnapshotError(f"{caffemodel}: {error}") from None
    engine.convention = snapshot_convention(settings, caffemodel, rule, engine.info)
    return engine


def snapshot_convention(settings, caffemodel: Path, rule, info=None):
    """The snapshot's effective input convention and output meaning
    (:func:`depth_eval.caffe.conventions.snapshot_convention`): its sidecar over the
    settings' options; checked against the network's input when ``info`` (its
    :class:`~depth_eval.engines.base.NetworkInfo`) is given.  Only a depth output is decoded
    by the output options (``rule``); a gradient output is read as it is."""
    from depth_eval.caffe import conventions
    from depth_eval.engines.base import DEPTH_OUTPUT

    return conventions.snapshot_convention(
        settings.convention_options(), caffemodel,
        input_shape=None if info is None else info.input_shape,
        input_name=None if info is None else info.input_name,
        depth_output=rule == DEPTH_OUTPUT)


def check_memory(prototxt: Path, caffemodel: Path, batch: int) -> str | None:
    """Refuse (SnapshotError) a network whose activations for ``batch`` images and weights need
    more memory than is available, before any weight is read (:mod:`depth_eval.inputs.limits`); a
    warning (one line) when its activations are large but fit, else None.

    A definition whose shapes cannot be inferred is left to the engine, which reports it.
    """
    # The Caffe schema (protobuf): only once a snapshot is loaded, not for --help's choices.
    from depth_eval.caffe import proto, shapes

    definition = proto.read_prototxt(prototxt)
    inputs = shapes.network_inputs(definition)
    try:
        blob_shapes = shapes.infer_shapes(definition, strict=False)
    except ShapeError:
        return None
    if len(inputs) != 1:
        return None
    try:
        weights_bytes = os.stat(caffemodel).st_size
    except OSError:
        weights_bytes = 0
    return limits.check_network_memory(prototxt, blob_shapes, next(iter(inputs.values())),
                                       batch, weights_bytes)
