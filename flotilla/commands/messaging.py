"""``flotilla consume <service>`` and ``flotilla outbox-relay <service>``: messaging workers as processes.

A service declares its workers on its ``Service``, as factories taking the loaded settings (so
they can open the service's database or name its queues per environment):

- ``consumers``: ``(settings) -> Iterable[Consumer]``, run by ``flotilla consume``;
- ``outbox``: ``(settings) -> OutboxRelay``, run by ``flotilla outbox-relay`` (or inside
  ``flotilla consume --outbox-relay`` for a service small enough to want one process).

Each worker process serves ``/livez``, ``/readyz`` and ``/metrics`` on ``FLOTILLA_BIND`` (the same
chassis pieces as an HTTP service, on a small threaded server) and stops cleanly on SIGTERM:
``/readyz`` turns 503, polling stops, in-flight work finishes, the process exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from flotilla.commands import CommandFailed, load_service_config

log = logging.getLogger("flotilla.messaging")

DEFAULT_BIND = "127.0.0.1:8000"
# Longer than SQS's longest long poll (20 s), or every idle receive would time out client-side.
SQS_READ_TIMEOUT = 30.0


class _WorkerProcess:
    """The parts every messaging worker shares: control server, health checks, signals, exit code."""

    def __init__(self, service_name: str, bind: str | None) -> None:
        self.svc, self.platform, self.settings = load_service_config(service_name)
        self.bind = bind or os.environ.get("FLOTILLA_BIND", DEFAULT_BIND)
        from flotilla.app import create_app
        from flotilla.health import Health

        self.app = create_app(
            self.svc.name, self.settings, platform=self.platform, title=f"{self.svc.name} worker"
        )
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # probes every few seconds are not news
        self.health = Health.of(self.app)
        metrics = self.app.extensions["flotilla.metrics"]
        # In multiprocess mode values live in files and /metrics reads them; otherwise the app's registry.
        self.registry = None if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else metrics.registry
        self.stopping = threading.Event()
        self._on_stop: list[Callable[[], None]] = []
        self._server: Any = None

    def factory(self, key: str, what: str) -> Callable[[Any], Any]:
        found = getattr(self.svc, key, None)
        if not callable(found):
            raise CommandFailed(
                f"{self.svc.name} declares no {what}: set {key}=<factory> on its Service",
                exit_code=2,
            )
        return found  # type: ignore[no-any-return]

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._on_stop.append(callback)

    def serve_control(self) -> None:
        from werkzeug.serving import make_server

        host, _, port = self.bind.rpartition(":")
        try:
            self._server = make_server(host or "0.0.0.0", int(port), self.app, threaded=True)
        except (OSError, ValueError) as err:
            raise CommandFailed(f"cannot listen on {self.bind}: {err}") from None
        threading.Thread(target=self._server.serve_forever, name="control-http", daemon=True).start()
        log.info("health and metrics on http://%s", self.bind)

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._signalled)
        signal.signal(signal.SIGINT, self._signalled)

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping after in-flight work", signal.Signals(signum).name)
        self.stop()

    def stop(self) -> None:
        self.health.drain.set()
        self.stopping.set()
        for callback in self._on_stop:
            callback()

    def watch(self, healthy: Callable[[], bool]) -> bool:
        """Block until stopped; stop early (and report failure) if ``healthy()`` turns false."""
        while not self.stopping.wait(1.0):
            if not healthy():
                log.error("a worker thread died; stopping so the pod restarts")
                self.stop()
                return False
        return True

    def finish(self) -> None:
        from flotilla.tracing import tracer_provider

        provider = tracer_provider()
        if provider is not None:
            provider.force_flush(5000)
        if self._server is not None:
            self._server.shutdown()


def _start_relay(worker: _WorkerProcess) -> threading.Thread:
    from flotilla.messaging.outbox import OutboxMetrics

    relay = worker.factory("outbox", "outbox relay")(worker.settings)
    relay.metrics = OutboxMetrics(worker.registry, worker.svc.name)
    thread = threading.Thread(target=relay.run, args=(worker.stopping,), name="outbox-relay", daemon=True)
    thread.start()
    worker.health.add_check("outbox:database", relay.check)
    return thread


@click.command()
@click.argument("service")
@click.option(
    "--bind", help=f"host:port for /livez, /readyz, /metrics (default FLOTILLA_BIND or {DEFAULT_BIND})."
)
@click.option("--outbox-relay", "with_relay", is_flag=True, help="also run the service's outbox relay here.")
def consume(service: str, bind: str | None, with_relay: bool) -> None:
    """Run SERVICE's SQS consumers until SIGTERM (finishes in-flight messages, exits 0)."""
    from flotilla import aws
    from flotilla.messaging.consumer import ConsumerMetrics, ConsumerRunner

    worker = _WorkerProcess(service, bind)
    consumers = list(worker.factory("consumers", "consumers")(worker.settings))
    runner = ConsumerRunner(
        consumers,
        aws.client("sqs", worker.platform, read_timeout=SQS_READ_TIMEOUT),
        service=worker.svc.name,
        metrics=ConsumerMetrics(worker.registry, worker.svc.name),
    )
    try:
        runner.start()
    except Exception as err:
        raise CommandFailed(f"{worker.svc.name}: cannot start consumers: {err}") from None
    for name, check in runner.readiness_checks().items():
        worker.health.add_check(name, check)
    worker.on_stop(runner.stop)
    relay_thread = _start_relay(worker) if with_relay else None
    worker.install_signals()
    worker.serve_control()
    healthy = worker.watch(lambda: runner.pollers_alive and (relay_thread is None or relay_thread.is_alive()))
    runner.wait()
    if relay_thread is not None:
        relay_thread.join()
    worker.finish()
    if not healthy:
        raise CommandFailed("stopped after a worker thread died")


@click.command("outbox-relay")
@click.argument("service")
@click.option(
    "--bind", help=f"host:port for /livez, /readyz, /metrics (default FLOTILLA_BIND or {DEFAULT_BIND})."
)
def outbox_relay(service: str, bind: str | None) -> None:
    """Publish SERVICE's outbox rows until SIGTERM (finishes the current batch, exits 0)."""
    worker = _WorkerProcess(service, bind)
    thread = _start_relay(worker)
    worker.install_signals()
    worker.serve_control()
    healthy = worker.watch(thread.is_alive)
    thread.join()
    worker.finish()
    if not healthy:
        raise CommandFailed("stopped after the relay thread died")
