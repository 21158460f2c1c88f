"""Each service image behaves like a well-formed pod: health, non-root, JSON logs, drain, config errors."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from tests.backends.engine import wait_until

pytestmark = [pytest.mark.containers, pytest.mark.xdist_group("containers")]

LOG_KEYS = {"timestamp", "level", "service", "logger", "message", "request_id", "trace_id", "span_id"}
# Invalid for every service (a platform setting), plus each service's own example.
BAD_CONFIG = {"FLOTILLA_LOG_LEVEL": "LOUD"}
SERVICE_BAD_CONFIG = {
    "sample": {"SAMPLE_GREETING": ""},
    "catalog": {"CATALOG_DATABASE_URL": ""},
    "gateway": {"GATEWAY_ROUTES": "not json"},
}
DRAIN_SECONDS = 1.0
GRACEFUL_TIMEOUT = 20


def test_image_config_follows_the_contract(image: str, service: str) -> None:
    from tests.backends.engine import engine

    found = engine()
    assert found is not None
    config = found.client.images.get(image).attrs["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["flotilla"]
    assert env["FLOTILLA_SERVICE"] == service
    assert env["FLOTILLA_BIND"] == "0.0.0.0:8000"
    assert env["HOME"] == "/tmp"
    assert env["FLOTILLA_TRACE_FILE"].startswith("/tmp/")
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert env["PYTHONDONTWRITEBYTECODE"] == env["PYTHONUNBUFFERED"] == "1"
    labels = config["Labels"]
    for key in ("source", "revision", "version"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_default_command_serves_health_and_metrics(run_pod: Any) -> None:
    pod = run_pod()
    pod.wait_ready()
    assert pod.get("/livez")[0] == 200
    status, body = pod.get("/metrics")
    assert status == 200
    assert b"# TYPE" in body


def test_runs_as_non_root_and_logs_json_to_stdout(run_pod: Any, service: str) -> None:
    pod = run_pod(command=["serve", service])
    pod.wait_ready()
    processes = pod.wrapped.top(ps_args="-o uid,pid,comm")
    uid_column = processes["Titles"].index("UID")
    uids = {row[uid_column] for row in processes["Processes"]}
    assert uids == {"65532"}, processes

    records = pod.json_logs()
    assert records, pod.output()
    for record in records:
        assert record.keys() >= LOG_KEYS, record
        assert record["service"] == service


def test_sigterm_finishes_in_flight_request_then_exits_0(run_pod: Any, service: str) -> None:
    pod = run_pod(
        command=["serve", service],
        env={
            "FLOTILLA_DRAIN_SECONDS": str(DRAIN_SECONDS),
            "FLOTILLA_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
        },
    )
    pod.wait_ready()
    if pod.get("/slow?seconds=0")[0] != 200:
        # No route to hold a request open (only sample has one; serving is the same code for all):
        # still the drain and the clean exit.
        pod.wrapped.kill(signal="SIGTERM")
        wait_until(lambda: pod.get("/readyz", timeout=1.0)[0] == 503, DRAIN_SECONDS + 5, "/readyz 503")
        assert pod.wait_exit(timeout=DRAIN_SECONDS + GRACEFUL_TIMEOUT + 10) == 0, pod.output()
        return

    # Long enough to outlast the drain: the request is still running when gunicorn is told to stop.
    slow = DRAIN_SECONDS + 2
    with socket.create_connection(("127.0.0.1", pod.port), timeout=GRACEFUL_TIMEOUT) as conn:
        conn.sendall(f"GET /slow?seconds={slow} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        started = time.monotonic()
        pod.wrapped.kill(signal="SIGTERM")
        wait_until(lambda: pod.get("/readyz", timeout=1.0)[0] == 503, DRAIN_SECONDS + 5, "/readyz 503")
        response = _read_all(conn)
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert time.monotonic() - started >= slow - 0.5

    code = pod.wait_exit(timeout=DRAIN_SECONDS + GRACEFUL_TIMEOUT + 10)
    assert code == 0, pod.output()


def test_bad_config_exits_2_with_one_line(image: str, service: str, run_pod: Any) -> None:
    for key, value in {**BAD_CONFIG, **SERVICE_BAD_CONFIG.get(service, {})}.items():
        pod = run_pod(command=["serve", service], env={key: value})
        assert pod.wait_exit(timeout=30) == 2, pod.output()
        lines = [line for line in pod.stderr().splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert "invalid configuration" in lines[0]
        assert key in lines[0]
        assert not pod.stdout().strip() or all(json.loads(line) for line in pod.stdout().splitlines() if line)


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_migrations_run_from_the_image(run_pod: Any, service: str) -> None:
    """What the chart's migration Job runs: the migrations must be inside the image, not only in the tree."""
    from flotilla.service import load_service

    if load_service(service).migrations is None:
        pytest.skip(f"{service} has no migrations")
    pod = run_pod(command=["migrate", service])
    assert pod.wait_exit(timeout=60) == 0, pod.output()


def _sync_dir(image: str) -> str:
    """The first PYTHONPATH entry: where `skaffold dev` syncs sources (docs/images.md, charts' dev.sync)."""
    from tests.backends.engine import engine

    found = engine()
    assert found is not None
    env = dict(item.split("=", 1) for item in found.client.images.get(image).attrs["Config"]["Env"])
    return env["PYTHONPATH"].split(":")[0]


def _python(image: str, code: str, **kwargs: Any) -> str:
    from tests.backends.engine import engine

    found = engine()
    assert found is not None
    out = found.client.containers.run(
        image,
        ["-c", code],
        entrypoint=["python"],
        network_mode="host",
        read_only=True,
        remove=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=16m", **kwargs.pop("tmpfs", {})},
        **kwargs,
    )
    return out.decode().strip()


def test_sync_dir_is_empty_owned_by_65532_and_first_on_sys_path(image: str) -> None:
    sync_dir = _sync_dir(image)
    assert sync_dir.startswith("/") and "python3" not in sync_dir
    code = (
        "import json, os, sys\n"
        f"d = {sync_dir!r}\n"
        "st = os.stat(d)\n"
        "try:\n"
        "    open(os.path.join(d, 'probe.py'), 'w')\n"
        "    writable = True\n"
        "except OSError:\n"
        "    writable = False\n"
        "print(json.dumps({'dir': os.path.isdir(d), 'entries': os.listdir(d), 'uid': st.st_uid, 'gid': st.st_gid,"
        " 'first': sys.path.index(d) < min(i for i, p in enumerate(sys.path) if p.endswith('site-packages')),"
        " 'writable': writable}))\n"
    )
    facts = json.loads(_python(image, code))
    assert facts == {"dir": True, "entries": [], "uid": 65532, "gid": 65532, "first": True, "writable": False}


# The chart's dev.sync init container (charts/flotilla-service, syncSeedContainer) runs this same copy.
SEED = (
    "import os, shutil, flotilla\n"
    "skip = shutil.ignore_patterns('__pycache__', '*.dist-info')\n"
    "sync = {sync!r}\n"
    "shutil.copytree(os.path.dirname(flotilla.__file__), os.path.join(sync, 'flotilla'), dirs_exist_ok=True, ignore=skip)\n"
    "shutil.copytree('/opt/service', sync, dirs_exist_ok=True, ignore=skip)\n"
)


def test_modules_in_the_sync_dir_shadow_the_installed_ones(image: str, service: str) -> None:
    """Like a dev.sync pod: a writable volume on the sync dir, seeded with the chassis and the service, then
    a chassis file and a service file changed; both changes are what the service imports."""
    sync_dir = _sync_dir(image)
    code = (
        SEED.format(sync=sync_dir)
        + "open(os.path.join(sync, 'flotilla', 'synced_probe.py'), 'w').write('SYNCED = True\\n')\n"
        + f"open(os.path.join(sync, 'services', {service!r}, 'synced_probe.py'), 'w').write('SYNCED = 1\\n')\n"
        "import subprocess, sys\n"
        "print(subprocess.run([sys.executable, '-c', 'import flotilla, flotilla.synced_probe as p; "
        f"import services.{service}.synced_probe as q; from flotilla.service import load_service; "
        f'print(flotilla.__file__, p.SYNCED, q.SYNCED, load_service("{service}").name)\'],'
        " capture_output=True, text=True, check=True).stdout)\n"
    )
    out = _python(image, code, tmpfs={sync_dir: "rw,nosuid,nodev,size=16m,uid=65532,gid=65532"})
    assert out == f"{sync_dir}/flotilla/__init__.py True 1 {service}"


def test_image_holds_its_own_service_and_no_dev_tools(image: str, service: str) -> None:
    """Production code only: the dev tools (local stack, dev issuer), the tests and bench helpers and every
    other service are not importable, and the entrypoint offers no dev command."""
    from tests.containers.conftest import SERVICES

    others = [s for s in SERVICES if s != service]
    code = (
        "import importlib.util, json, subprocess\n"
        "def importable(name):\n"
        "    try:\n"
        "        return importlib.util.find_spec(name) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        f"names = ['flotilla_dev', 'flotilla_dev.localstack', 'flotilla.localstack', 'moto', 'tests', 'bench',"
        f" 'services.{service}', *[f'services.{{o}}' for o in {others!r}]]\n"
        "help = subprocess.run(['flotilla', '--help'], capture_output=True, text=True, check=True).stdout\n"
        "commands = sorted(line.split()[0] for line in help.split('Commands:')[1].splitlines() if line.strip())\n"
        "print(json.dumps({'importable': [n for n in names if importable(n)], 'commands': commands}))\n"
    )
    facts = json.loads(_python(image, code))
    assert facts["importable"] == [f"services.{service}"]
    dev_commands = {"up", "dev-issuer", "token", "traces"}
    assert not dev_commands & set(facts["commands"]), facts["commands"]
    assert {"serve", "migrate", "config", "probe"} <= set(facts["commands"])
    assert ("api-key" in facts["commands"]) == (service == "gateway")


def test_service_images_share_every_layer_but_their_own_service(service_images: dict[str, str]) -> None:
    """The chassis layer is byte-identical in every image (a registry stores it once); only the layer
    holding the image's one service differs."""
    from tests.backends.engine import engine

    found = engine()
    assert found is not None
    layers = {}
    for service, wanted in service_images.items():
        for candidate in (wanted, wanted.rsplit(":", 1)[0] + ":latest"):
            if found.has_image(candidate):
                layers[service] = found.client.images.get(candidate).attrs["RootFS"]["Layers"]
                break
    if len(layers) < 2:
        pytest.skip("fewer than two service images built")
    shared = {tuple(ls[:-2]) + tuple(ls[-1:]) for ls in layers.values()}
    own = {ls[-2] for ls in layers.values()}
    assert len(shared) == 1, "the base and chassis layers differ between service images"
    assert len(own) == len(layers), "two services have the same service layer"
