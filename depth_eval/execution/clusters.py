"""The clusters ``--dask KIND:ARGUMENT`` makes for a run, one :data:`CLUSTERS` entry per kind.

``local:N`` (N worker processes here), ``slurm:JOBS`` / ``pbs:JOBS`` / ``sge:JOBS`` (JOBS batch
jobs through dask-jobqueue, configured by dask's own configuration: ``jobqueue.yaml`` or
``DASK_JOBQUEUE__SLURM__*``) and ``ssh:SCHEDULER,WORKER,...`` (Dask's SSHCluster over
asyncssh, configured by ``~/.ssh/config``).  Anything else given to ``--dask`` is a running
scheduler's address.  A new kind is one :class:`ClusterKind` in :data:`CLUSTERS`.

Nothing here imports dask at module level: the settings parse ``--dask`` with it before any
cluster is made.  The makers import what they need when called.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from functools import partial
from collections.abc import Callable

# Seconds a made cluster waits for the workers it asked for (a batch queue may be slow to
# start the jobs); dask's configuration key, so a site sets it beside its jobqueue.yaml.
WORKERS_TIMEOUT_KEY = "depth-eval.workers-timeout"
WORKERS_TIMEOUT_S = 300
# The environment variable dask reads that key from (dask's DASK_ + upper-cased key, "__"
# between its parts), for the message that says how to wait longer.
WORKERS_TIMEOUT_ENV = "DASK_DEPTH_EVAL__WORKERS_TIMEOUT"
# Imported by each worker process of ``local:N`` as it starts (dask's preload): see
# :func:`depth_eval.execution.dask_worker.dask_setup`.
WORKER_PRELOAD = "depth_eval.execution.dask_worker"
# A host name or address as ssh takes it (IPv6 in brackets, as in a scheduler's address).
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$")


@dataclass(frozen=True)
class Made:
    """A cluster made for the run and the worker processes it asked for."""

    cluster: object
    workers: int


@dataclass(frozen=True)
class ClusterKind:
    """One kind of ``--dask KIND:ARGUMENT``.

    Attributes
    ----------
    name : str
        KIND.
    argument : str
        What ARGUMENT is, as the messages name it (``N``, ``JOBS``...).
    parse : callable
        ARGUMENT's text -> its value; ValueError(why) when it is wrong.
    needs : tuple of str
        The modules the kind needs (checked before any work).
    make : callable
        ARGUMENT's value -> :class:`Made` (imports dask; blocking until the cluster is up,
        though not until its workers have joined).  It may run on a thread.
    prepare : callable or None
        What must run in the main thread before ``make`` (imports that set signal handlers).
    meanwhile : bool
        Made on a thread while the run hashes and plans (a kind that seldom fails to start:
        a failure then comes after OUT_DIR is made); else before anything is written.
    """

    name: str
    argument: str
    parse: Callable[[str], object]
    needs: tuple[str, ...]
    make: Callable[[object], Made]
    prepare: Callable[[], None] | None = None
    meanwhile: bool = False


def workers_timeout_s() -> float:
    """Seconds to wait for a made cluster's workers (dask's configuration, else the default)."""
    import dask

    value = dask.config.get(WORKERS_TIMEOUT_KEY, WORKERS_TIMEOUT_S)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{WORKERS_TIMEOUT_ENV} (dask's {WORKERS_TIMEOUT_KEY}) must be a "
                         f"number of seconds above 0, got {value!r}")
    return seconds


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _whole_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError("a whole number of at least 1")
    return int(text)


def _local_workers(text: str) -> int:
    """N of ``local:N``: at most the cores here (one single-threaded worker process per core;
    more only share the cores, each with its own copy of the model)."""
    count = _whole_number(text)
    cores = usable_cores()
    if count > cores:
        raise ValueError(f"at most {cores}, the cores of this machine (one worker process "
                         "per core)")
    return count


def _hosts(text: str) -> tuple[str, ...]:
    """``ssh:``'s hosts: the scheduler's, then at least one worker's (a host once per worker
    process on it)."""
    hosts = tuple(text.split(","))
    bad = [host for host in hosts if not _HOST.match(host)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a host name or address")
    if len(hosts) < 2:
        raise ValueError("the scheduler's host, then a host per worker process "
                         "(e.g. ssh:host0,host1,host2)")
    return hosts


def _make_local(workers: int) -> Made:
    import logging

    import dask
    import distributed

    # ":0": the scheduler's web server on a free port (another cluster may hold Dask's 8787,
    # and the warning would take several lines).
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.CRITICAL,
        preload=[WORKER_PRELOAD, *(dask.config.get("distributed.worker.preload", None) or ())])
    return Made(cluster, workers)


def _quiet_cluster_logs() -> None:
    """Errors only from the logs of cluster making: SSHCluster logs every line its remote
    processes print, and a cluster that fails warns before the error the run gives."""
    import logging

    for name in ("distributed.deploy.spec", "distributed.deploy.ssh"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _import_jobqueue() -> None:
    """Import dask_jobqueue keeping this process's Ctrl-C: its runner module sets SIGINT to
    exit the process at import (and can only do so in the main thread)."""
    import signal

    previous = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, previous)


def _make_jobqueue(class_name: str, jobs: int) -> Made:
    """JOBS jobs of the class's queue, as dask's configuration describes them; the scheduler
    here, its web server on a free port unless the configuration names one."""
    import dask
    import dask_jobqueue

    cluster_class = getattr(dask_jobqueue, class_name)
    config_name = cluster_class.job_cls.default_config_name()
    unset = [key for key in ("cores", "memory")
             if dask.config.get(f"jobqueue.{config_name}.{key}", None) is None]
    if unset:
        raise ValueError(
            f"dask's configuration does not give the jobs' {' and '.join(unset)}: set "
            f"jobqueue.{config_name}.{unset[0]} in ~/.config/dask/jobqueue.yaml (or "
            f"DASK_JOBQUEUE__{config_name.upper()}__{unset[0].upper()})")
    scheduler_options = {"dashboard_address": ":0", **(dask.config.get(
        f"jobqueue.{config_name}.scheduler-options", None) or {})}
    _quiet_cluster_logs()
    cluster = cluster_class(scheduler_options=scheduler_options)
    try:
        cluster.scale(jobs=jobs)
        return Made(cluster, jobs * cluster._dummy_job.worker_processes)
    except BaseException:
        cluster.close()
        raise


def _make_ssh(hosts: tuple[str, ...]) -> Made:
    """The scheduler on the first host, listening on the address given for it (the one the
    workers are told), a worker process of one thread per other host entry, each started with
    this Python (the same path on every host); ssh as ``~/.ssh/config`` sets it up."""
    import warnings

    with warnings.catch_warnings():  # asyncssh's imports warn of cryptography's deprecations
        warnings.simplefilter("ignore")
        import asyncssh  # noqa: F401
    import distributed

    _quiet_cluster_logs()
    cluster = distributed.SSHCluster(
        list(hosts), remote_python=sys.executable, worker_options={"nthreads": 1},
        scheduler_options={"host": hosts[0].strip("[]"), "port": 0,
                           "dashboard_address": ":0"})
    return Made(cluster, len(hosts) - 1)


_JOBQUEUE = ("distributed", "dask_jobqueue")

CLUSTERS: dict[str, ClusterKind] = {kind.name: kind for kind in (
    ClusterKind("local", "N", _local_workers, ("distributed",), _make_local, meanwhile=True),
    ClusterKind("slurm", "JOBS", _whole_number, _JOBQUEUE,
                partial(_make_jobqueue, "SLURMCluster"), _import_jobqueue),
    ClusterKind("pbs", "JOBS", _whole_number, _JOBQUEUE, partial(_make_jobqueue, "PBSCluster"), _import_jobqueue),
    ClusterKind("sge", "JOBS", _whole_number, _JOBQUEUE, partial(_make_jobqueue, "SGECluster"), _import_jobqueue),
    ClusterKind("ssh", "HOST,HOST,...", _hosts, ("distributed", "asyncssh"), _make_ssh),
)}


def cluster_kind(text: str) -> tuple[ClusterKind, str] | None:
    """(kind, ARGUMENT's text) for ``KIND:ARGUMENT``, None for a scheduler's address."""
    name, colon, argument = text.partition(":")
    kind = CLUSTERS.get(name)
    return (kind, argument) if colon and kind is not None else None


def usage() -> str:
    """The kinds as ``--dask`` takes them (``local:N, slurm:JOBS, ...``)."""
    return ", ".join(f"{kind.name}:{kind.argument}" for kind in CLUSTERS.values())
