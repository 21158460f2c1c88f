"""The one gunicorn configuration for every Flotilla service, read from ``FLOTILLA_*`` variables.

Also usable directly: ``gunicorn -c python:flotilla.serving.gunicorn_config 'module:app'``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def cpu_limit() -> float:
    """CPUs this container may use: the cgroup v2 quota when set, else the CPUs we are pinned to."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(float(quota) / float(period), 0.1)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


service = os.environ.get("FLOTILLA_SERVICE", "app")

bind = [os.environ.get("FLOTILLA_BIND", "127.0.0.1:8000")]
# gthread, plus a drain that closes kept-alive connections cleanly and problem+json for the
# requests gunicorn refuses itself (flotilla.serving.threadworker).
worker_class = "flotilla.serving.threadworker.DrainingThreadWorker"
# Threads cover I/O waits; processes cover CPU. Two workers minimum so one slow GC or crash never
# leaves the pod with no worker, then two per CPU of the container's limit.
workers = _env_int("FLOTILLA_WORKERS", max(2, math.ceil(cpu_limit()) * 2))
threads = _env_int("FLOTILLA_THREADS", 4)
# Longer than the ALB idle timeout (60 s), so the ALB, not gunicorn, closes idle connections
# and never sends a request down a socket gunicorn is closing.
keepalive = _env_int("FLOTILLA_KEEPALIVE", 75)
timeout = _env_int("FLOTILLA_TIMEOUT", 30)
graceful_timeout = _env_int("FLOTILLA_GRACEFUL_TIMEOUT", 20)
# Worker recycling is off: at a thousand requests a second a 2,000-request limit re-forks every
# worker every few seconds, paying start-up and cold caches over and over. It only hides a leak;
# a service that has one opts in (FLOTILLA_MAX_REQUESTS) until the leak is fixed, and the
# container's memory limit stays the backstop.
max_requests = _env_int("FLOTILLA_MAX_REQUESTS", 0)
max_requests_jitter = _env_int("FLOTILLA_MAX_REQUESTS_JITTER", max_requests // 10)
# Heartbeat files on tmpfs: on a disk-backed /tmp a slow fsync can get workers killed as hung.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's heartbeat files, not temporary data
worker_tmp_dir = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None
# gunicorn >= 25 opens a control socket under $HOME or the working directory by default, which a
# read-only root filesystem refuses: keep it off unless a path is asked for.
_control = os.environ.get("FLOTILLA_CONTROL_SOCKET", "")
control_socket_disable = not _control
if _control:
    control_socket = _control
accesslog = None  # the app writes its own access line, with the route template and trace ids
errorlog = "-"
loglevel = os.environ.get("FLOTILLA_LOG_LEVEL", "INFO").lower()
logger_class = "flotilla.serving.logger.GunicornLogger"
forwarded_allow_ips = os.environ.get("FLOTILLA_FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = f"flotilla-{service}"


def metrics_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def on_starting(server: Any) -> None:
    """Wipe the multiprocess metrics directory: files left by a previous run would be counted."""
    directory = metrics_dir()
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def post_fork(server: Any, worker: Any) -> None:
    """Start telemetry in the worker: exporter threads started before fork don't survive it."""
    from flotilla.serving.worker import init_worker_telemetry

    init_worker_telemetry(service)


def child_exit(server: Any, worker: Any) -> None:
    """Mark a dead worker so its live gauges (in-flight requests) stop counting."""
    if metrics_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


_registration: Any = None


def when_ready(server: Any) -> None:
    """Register in Cloud Map when asked (``FLOTILLA_DISCOVERY_REGISTER``): for places without a
    controller doing it, such as the local stack against the emulator. A failure is logged, not
    fatal: callers that discover by Cloud Map will not find this instance, but it still serves."""
    global _registration  # noqa: PLW0603 - one registration per master
    from flotilla.discovery.settings import registration_from_settings

    port = int(bind[0].rsplit(":", 1)[1])
    try:
        registration = registration_from_settings(service, port)
        if registration is not None:
            registration.start()
            _registration = registration
    except Exception as err:
        server.log.warning("Cloud Map registration failed: %s", err)


def on_exit(server: Any) -> None:
    if _registration is not None:
        try:
            _registration.stop()
        except Exception as err:
            server.log.warning("Cloud Map deregistration failed: %s", err)
    directory = metrics_dir()
    if directory and directory.startswith(tempfile.gettempdir() + "/flotilla-metrics/"):
        shutil.rmtree(directory, ignore_errors=True)
