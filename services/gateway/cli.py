"""``flotilla api-key NAME``: make a key for a machine client; only its hash goes into the settings."""

from __future__ import annotations

import hashlib
import json
import re
import secrets

import click

from flotilla.commands import CommandFailed


@click.command("api-key")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, help='space-separated scopes, e.g. "admin" (repeatable).')
@click.option("--daily-quota", type=click.IntRange(1), default=None, help="requests per UTC day.")
def api_key(name: str, scopes: tuple[str, ...], daily_quota: int | None) -> None:
    """Print a new API key (once: it is not stored) and its GATEWAY_API_KEYS entry."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise CommandFailed(f"NAME must be letters, digits, '.', '_' or '-', got {name!r}", exit_code=2)
    key = "flk_" + secrets.token_urlsafe(32)
    entry: dict[str, object] = {
        "sha256": hashlib.sha256(key.encode()).hexdigest(),
        "scopes": [word for group in scopes for word in group.split()],
    }
    if daily_quota is not None:
        entry["dailyQuota"] = daily_quota
    click.echo(f"key (give it to the client; it is shown only now): {key}")
    click.echo(f"GATEWAY_API_KEYS entry: {json.dumps({name: entry})}")
