"""``flotilla migrate <service>`` and ``flotilla seed <service>``: schema and starting data, on request.

A service declares both on its ``Service``:

- ``migrations``: a :class:`flotilla.db.Migrations` (its settings must include ``DatabaseSettings``);
- ``seed``: ``(settings) -> Mapping[str, int]``, loading its data idempotently and returning how
  many rows (or items) of each kind it added; a second run adds nothing.

A ``flotilla.commands`` entry point (see ``flotilla.commands``). A service without the declaration, or without a
database URL, is a configuration error (exit 2); an unreachable database is exit 1 with one line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from flotilla.commands import CommandFailed, load_service_config


def _declared(service: Any, key: str, what: str) -> Any:
    found = getattr(service, key, None)
    if found is None:
        raise CommandFailed(f"{service.name} declares no {what}: set {key}=... on its Service", exit_code=2)
    return found


def _one_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


@click.command()
@click.argument("service")
@click.option("--revision", default="head", show_default=True, help="target revision.")
def migrate(service: str, revision: str) -> None:
    """Upgrade SERVICE's database schema (Alembic) to REVISION; safe to run again."""
    import sqlalchemy as sa

    from flotilla.db.engine import create_engine
    from flotilla.db.migrations import Migrations
    from flotilla.db.settings import DatabaseSettings

    svc, _, settings = load_service_config(service)
    migrations = _declared(svc, "migrations", "migrations")
    if not isinstance(migrations, Migrations):
        raise CommandFailed(f"{svc.name}: Service.migrations must be a flotilla.db.Migrations", exit_code=2)
    if not isinstance(settings, DatabaseSettings):
        raise CommandFailed(
            f"{svc.name}: its settings do not include flotilla.db.DatabaseSettings", exit_code=2
        )
    engine = create_engine(settings)
    where = engine.url.render_as_string(hide_password=True)
    try:
        before, after = migrations.upgrade(engine, revision, lock_name=svc.name)
    except sa.exc.SQLAlchemyError as err:
        raise CommandFailed(f"{svc.name}: migrating {where} failed: {_one_line(err)}") from None
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"{svc.name}: {where} already at {after}")
    else:
        click.echo(f"{svc.name}: {where} migrated from {before or 'empty'} to {after}")


@click.command()
@click.argument("service")
def seed(service: str) -> None:
    """Load SERVICE's starting data; idempotent (a second run adds nothing)."""
    import sqlalchemy as sa
    from botocore.exceptions import BotoCoreError, ClientError

    svc, _, settings = load_service_config(service)
    loader: Callable[[Any], Mapping[str, int]] = _declared(svc, "seed", "seed")
    try:
        added = loader(settings)
    except sa.exc.SQLAlchemyError as err:
        raise CommandFailed(
            f"{svc.name}: seeding failed: {_one_line(err)} (did `flotilla migrate {service}` run?)"
        ) from None
    except (BotoCoreError, ClientError) as err:
        raise CommandFailed(f"{svc.name}: seeding failed: {_one_line(err)}") from None
    summary = ", ".join(f"{count} {kind}" for kind, count in added.items())
    if any(added.values()):
        click.echo(f"{svc.name}: seeded {summary}")
    else:
        click.echo(f"{svc.name}: already seeded (added {summary})")
