"""Clusters made for the run, for real: ``--dask slurm:2`` on a single-node SLURM started on
this machine (tools/slurm_localhost.sh) and ``--dask ssh:127.0.0.1,127.0.0.1`` through an
sshd of the test's own (tools/sshd_localhost.sh), both on loopback only, each giving the
local run's numbers; a SLURM job cancelled mid-run costs nothing; no job is left in the queue
and no worker left running.

The services are started once per session and stopped at its end, whatever happened.  They
need root (SlurmUser=root, an sshd) and Debian's slurm-wlm, munge and openssh-server (the
scripts install them when missing); without those the tests skip, saying which.

The runs are ``test_depth.py`` processes, as a user runs them, with the configuration the
docs show (docs/clusters.md): a jobqueue.yaml in DASK_CONFIG, a ``~/.ssh/config`` in a HOME
of the test's.  The workers import this tree's depth_eval: PYTHONPATH, exported by sbatch to
the jobs and set by the test's sshd for its sessions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from counting_engine import ENGINE_NAME, PASSES_ENV, SLOW_ENV, logged_passes  # noqa: E402
from helpers import GLOBAL, GOOD, REPO, evaluate, make_workspace, results  # noqa: E402
from test_dask import counting, same_pixels, same_values, units_in, wait_until  # noqa: E402,F401

pytestmark = pytest.mark.slow

STEMS4 = ("00000", "00001", "gray00000", "big00000")
TOOLS = REPO / "tools"
COUNTING_SCRIPT = Path(__file__).with_name("counting_engine.py")
# Seconds a whole run on the test's cluster may take (the jobs start in about a second).
RUN_TIMEOUT_S = 240
# The configuration file of the docs' one-machine SLURM recipe: one core and 4 GB a job (the
# workers' memory limit: a node that does not track memory is not asked for it), the default
# partition, the scheduler on loopback.
JOBQUEUE_YAML = """\
jobqueue:
  slurm:
    cores: 1
    processes: 1
    memory: 4GB
    job-directives-skip: ["--mem"]
    walltime: "00:30:00"
    log-directory: {logs}
    scheduler-options:
      host: 127.0.0.1
{extra}"""


def _service(script: str, needs: tuple[str, ...], folder: Path, *arguments: str):
    """Start a service with its tools/ script; skip (saying why) where it cannot exist."""
    if os.geteuid() != 0:
        pytest.skip(f"{script} needs root")
    if shutil.which("apt-get") is None and not all(shutil.which(c) or os.path.exists(c)
                                                   for c in needs):
        pytest.skip(f"{', '.join(needs)} not installed, and no apt-get to install them")
    done = subprocess.run([str(TOOLS / script), "start", str(folder), *arguments],
                          capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        subprocess.run([str(TOOLS / script), "stop", str(folder)], timeout=60)
        if not all(shutil.which(c) or os.path.exists(c) for c in needs):
            pytest.skip(f"{', '.join(needs)} could not be installed: {done.stderr.strip()}")
        pytest.fail(f"{script} start failed: {done.stderr.strip()}")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """SLURM_CONF of a one-node SLURM on 127.0.0.1, stopped at the end of the session."""
    folder = tmp_path_factory.mktemp("slurm")
    _service("slurm_localhost.sh", ("slurmctld", "slurmd", "munged", "sbatch"), folder)
    try:
        yield folder / "slurm.conf"
    finally:
        subprocess.run([str(TOOLS / "slurm_localhost.sh"), "stop", str(folder)], timeout=120)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A HOME whose ~/.ssh/config reaches the test's sshd on 127.0.0.1 (key-only, its own
    host key), stopped at the end of the session."""
    folder = tmp_path_factory.mktemp("sshd")
    _service("sshd_localhost.sh", ("/usr/sbin/sshd", "ssh-keygen"), folder,
             f"PYTHONPATH={REPO}")
    try:
        home = tmp_path_factory.mktemp("ssh-home")
        (home / ".ssh").mkdir(mode=0o700)
        shutil.copy(folder / "ssh_config", home / ".ssh" / "config")
        yield home
    finally:
        subprocess.run([str(TOOLS / "sshd_localhost.sh"), "stop", str(folder)], timeout=60)


def queue(slurm_conf: Path, *options: str) -> list[str]:
    """squeue's job ids (with options, e.g. ``-t R``)."""
    done = subprocess.run(["squeue", "-h", "-o", "%i", *options], capture_output=True,
                          text=True, env={**os.environ, "SLURM_CONF": str(slurm_conf)},
                          check=True, timeout=30)
    return done.stdout.split()


def slurm_env(tmp_path: Path, slurm_conf: Path, extra_yaml: str = "", **variables) -> dict:
    """The environment of a run on the test's SLURM: its jobqueue.yaml in DASK_CONFIG."""
    config = tmp_path / "dask-config"
    config.mkdir(exist_ok=True)
    (tmp_path / "job-logs").mkdir(exist_ok=True)
    (config / "jobqueue.yaml").write_text(JOBQUEUE_YAML.format(logs=tmp_path / "job-logs",
                                                               extra=extra_yaml))
    return {**os.environ, "SLURM_CONF": str(slurm_conf), "DASK_CONFIG": str(config),
            "PYTHONPATH": str(REPO), **variables}


def depth_eval(workspace: Path, env: dict, *options, script=REPO / "test_depth.py",
               out="out") -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, str(script), str(workspace / "colors"), str(workspace / "depths"),
             str(workspace / out), str(workspace / "snapshots"), *map(str, options)],
            capture_output=True, text=True, env=env, cwd=workspace, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"no end in {RUN_TIMEOUT_S} s; stderr: {error.stderr}")


def test_slurm_gives_the_local_runs_values_and_pixels_and_leaves_no_job(slurm, tmp_path):
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS4)
    done = depth_eval(workspace, slurm_env(tmp_path, slurm), "--quiet", "--dask", "slurm:2")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert evaluate(workspace, "--quiet", out="local") == 0
    same_values(results(workspace), results(workspace, "local"))
    for out in ("out", "out_abs"):
        assert same_pixels(workspace / out, workspace / out.replace("out", "local")) == 24
    assert {e["images_computed"] for e in results(workspace)["snapshots"].values()} == {4}
    assert queue(slurm) == []
    # The two jobs' workers ran here: their logs are where jobqueue.yaml sent them.
    assert len(list((tmp_path / "job-logs").glob("*.out"))) == 2


def test_a_job_cancelled_mid_run_costs_nothing(slurm, counting, tmp_path):
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS4)
    passes = tmp_path / "passes.log"
    # The jobs' workers get --engine counting (slow) from a preload of dask's configuration.
    env = slurm_env(tmp_path, slurm, "distributed:\n  worker:\n    preload: [counting_engine]\n",
                    **{SLOW_ENV: "0.6", PASSES_ENV: str(passes),
                       "PYTHONPATH": f"{REPO}{os.pathsep}{COUNTING_SCRIPT.parent}"})
    store_path = workspace / "out" / "results.sqlite"
    process = subprocess.Popen(
        [sys.executable, str(COUNTING_SCRIPT), workspace / "colors", workspace / "depths",
         workspace / "out", workspace / "snapshots", "--quiet", "--engine", ENGINE_NAME,
         "--dask", "slurm:2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=workspace)
    try:
        wait_until(lambda: len(logged_passes(passes)) >= 2 or process.poll() is not None,
                   RUN_TIMEOUT_S)
        running = queue(slurm, "-t", "R")
        assert process.poll() is None and len(running) == 2, "the run ended too soon"
        subprocess.run(["scancel", running[0]], check=True, timeout=30,
                       env={**os.environ, "SLURM_CONF": str(slurm)})
        _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    stored = units_in(store_path)
    assert len(stored) == len(set(stored)) == 8  # every unit, once
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME, out="local") == 0
    same_values(results(workspace), results(workspace, "local"))
    assert queue(slurm) == []


def test_jobs_the_queue_does_not_start_end_the_run_with_one_line(slurm, tmp_path):
    workspace = make_workspace(tmp_path, (GOOD,), ("00000",))
    # Jobs held for an hour: the queue does not start them.
    env = slurm_env(tmp_path, slurm, "", DASK_DEPTH_EVAL__WORKERS_TIMEOUT="3")
    config = Path(env["DASK_CONFIG"]) / "jobqueue.yaml"
    config.write_text(config.read_text().replace(
        "    cores: 1\n", "    cores: 1\n    job-extra-directives: ['--begin=now+3600']\n"))
    started = time.monotonic()
    done = depth_eval(workspace, env, "--quiet", "--dask", "slurm:2")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "error: --dask slurm:2: no worker joined in 3 s (a batch queue that has not started the "
        "jobs says why: squeue, qstat); DASK_DEPTH_EVAL__WORKERS_TIMEOUT=SECONDS waits longer")
    assert "Traceback" not in done.stderr and time.monotonic() - started < 60
    assert queue(slurm) == []  # the held jobs were cancelled
    assert not (workspace / "out" / GOOD).exists()


def test_jobqueue_configuration_without_cores_is_one_line(tmp_path):
    pytest.importorskip("dask_jobqueue")
    workspace = make_workspace(tmp_path, (GOOD,), ("00000",))
    config = tmp_path / "dask-config"
    config.mkdir()
    (config / "jobqueue.yaml").write_text("jobqueue:\n  slurm:\n    memory: 4GB\n")
    done = depth_eval(workspace, {**os.environ, "DASK_CONFIG": str(config)}, "--dask",
                      "slurm:1")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --dask slurm:1: cannot start the cluster (dask's configuration does not give "
        "the jobs' cores: set jobqueue.slurm.cores in ~/.config/dask/jobqueue.yaml (or "
        "DASK_JOBQUEUE__SLURM__CORES))"]


def _dask_spec_processes() -> list[int]:
    """The SSH-started Dask processes on this machine (their command names dask_spec)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"distributed.cli.dask_spec" in (
                    entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_ssh_gives_the_local_runs_values_and_leaves_no_process(sshd, tmp_path):
    pytest.importorskip("asyncssh")
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS4)
    env = {**os.environ, "HOME": str(sshd), "PYTHONPATH": str(REPO)}
    done = depth_eval(workspace, env, "--quiet", "--dask", "ssh:127.0.0.1,127.0.0.1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # neither asyncssh's warnings nor the remote processes' logs
    assert evaluate(workspace, "--quiet", out="local") == 0
    same_values(results(workspace), results(workspace, "local"))
    assert same_pixels(workspace / "out", workspace / "local") == 24
    wait_until(lambda: not _dask_spec_processes(), 30)


def test_ssh_to_a_host_that_refuses_the_key_is_one_line(sshd, tmp_path):
    pytest.importorskip("asyncssh")
    workspace = make_workspace(tmp_path, (GOOD,), ("00000",))
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    config = (sshd / ".ssh" / "config").read_text()
    (home / ".ssh" / "config").write_text("\n".join(
        line for line in config.splitlines() if "IdentityFile" not in line) + "\n")
    done = depth_eval(workspace, {**os.environ, "HOME": str(home)}, "--dask",
                      "ssh:127.0.0.1,127.0.0.1")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()[-1:]
    assert done.stderr.count("\n") == 1, done.stderr
    assert line.startswith("error: --dask ssh:127.0.0.1,127.0.0.1: cannot start the cluster (")
    assert not (workspace / "out").exists()
