"""The dev tools' commands: ``flotilla token`` and ``flotilla dev-issuer`` (local tokens and the JWKS the
local gateway trusts) and ``flotilla traces`` (the local span file as waterfalls)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import click

from flotilla.commands import CommandFailed
from flotilla_dev.issuer import DEFAULT_CLIENT_ID, DEFAULT_DIR, DEFAULT_URL, DevIssuer, create_issuer_app

_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FLOTILLA_DEV_ISSUER_DIR",
    default=DEFAULT_DIR,
    show_default=True,
    help="where the dev signing keys live (env FLOTILLA_DEV_ISSUER_DIR).",
)
_issuer_option = click.option(
    "--issuer",
    envvar="FLOTILLA_DEV_ISSUER_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="the iss claim and the issuer's base URL (env FLOTILLA_DEV_ISSUER_URL).",
)


@click.command()
@click.option("--sub", "subject", required=True, help="the user the token is for.")
@click.option(
    "--scope", "scopes", multiple=True, help='space-separated scopes, e.g. "cart orders" (repeatable).'
)
@click.option(
    "--ttl", type=click.IntRange(1, 7 * 24 * 3600), default=3600, show_default=True, help="seconds."
)
@click.option("--client-id", default=DEFAULT_CLIENT_ID, show_default=True, help="the client_id claim.")
@_issuer_option
@_dir_option
def token(
    *, subject: str, scopes: tuple[str, ...], ttl: int, client_id: str, issuer: str, directory: Path
) -> None:
    """Print a dev access token (RS256, Cognito-shaped claims) for the local gateway."""
    if not subject.strip():
        raise CommandFailed("--sub must not be empty", exit_code=2)
    words = [word for group in scopes for word in group.split()]
    try:
        click.echo(
            DevIssuer(directory, url=issuer, client_id=client_id).issue(subject, words, ttl_seconds=ttl)
        )
    except (OSError, ValueError) as err:
        raise CommandFailed(f"dev issuer key in {directory}: {err}", exit_code=2) from None


@click.command("dev-issuer")
@click.option("--bind", default=None, help="host:port to listen on (default: the issuer URL's).")
@_issuer_option
@_dir_option
def dev_issuer(*, bind: str | None, issuer: str, directory: Path) -> None:
    """Serve the dev issuer's JWKS and OpenID discovery document (local stack only)."""
    from werkzeug.serving import make_server

    parts = urlsplit(issuer)
    host, _, port_text = (bind or parts.netloc).rpartition(":")
    if not host or not port_text.isdigit():
        raise CommandFailed(f"--bind wants host:port, got {bind or parts.netloc!r}", exit_code=2)
    keys = DevIssuer(directory, url=issuer)
    try:
        keys.jwks()  # make the key now, not on the first request
    except (OSError, ValueError) as err:
        raise CommandFailed(f"dev issuer key in {directory}: {err}", exit_code=2) from None
    try:
        server = make_server(host, int(port_text), create_issuer_app(keys), threaded=True)
    except OSError as err:
        raise CommandFailed(f"cannot listen on {host}:{port_text}: {err}", exit_code=1) from None

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"dev issuer {issuer} serving {issuer}/.well-known/jwks.json on {host}:{server.server_port}")
    server.serve_forever()


@click.command()
@click.option(
    "--file", "path", type=click.Path(path_type=Path), help="span file (default FLOTILLA_TRACE_FILE)."
)
@click.option("-n", "--limit", default=5, show_default=True, help="how many recent traces.")
@click.option("--trace-id", help="show only this trace.")
def traces(path: Path | None, limit: int, trace_id: str | None) -> None:
    """Print recent traces from the local span file as waterfalls."""
    from flotilla_dev.waterfall import render_recent

    if path is None:
        from flotilla.config import ConfigError, load_platform

        try:
            path = load_platform().trace_file
        except ConfigError as err:
            raise CommandFailed(str(err), exit_code=2) from None
    click.echo(render_recent(path, limit=limit, trace_id=trace_id))
