"""``flotilla provision`` and ``flotilla iam-policy``: a service's resources spec applied, or printed as IAM.

A ``flotilla.commands`` entry point (see ``flotilla.commands``). Configuration problems (a bad spec, a bad
setting, an unknown service) are one line on stderr and exit code 2, like every Flotilla command.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from flotilla.commands import CommandFailed, load_service_config
from flotilla.resources.naming import Place, Resolved, resolve
from flotilla.resources.spec import ResourcesSpec, SpecError, load_spec
from flotilla.service import UnknownService, service_module

SPEC_FILE = "resources.yaml"


def spec_path(service_name: str) -> Path:
    """``<service package>/resources.yaml``: the spec lives next to the package that defines the service.

    ``pkg.module:attr`` names (services kept elsewhere) look next to ``pkg/module``.
    """
    try:
        module_name, _ = service_module(service_name)
    except UnknownService as err:
        raise CommandFailed(str(err), exit_code=2) from None
    found = importlib.util.find_spec(module_name)
    if found is None or found.origin is None:
        raise CommandFailed(f"cannot locate the package of service {service_name!r}", exit_code=2)
    return Path(found.origin).parent / SPEC_FILE


def _load(service_name: str, file: Path | None, env: str | None) -> tuple[Any, Any, ResourcesSpec, str]:
    service, platform, _ = load_service_config(service_name)
    path = file or spec_path(service_name)
    try:
        spec = load_spec(path)
    except SpecError as err:
        raise CommandFailed(str(err), exit_code=SpecError.exit_code) from None
    return service, platform, spec, env or platform.env


def _resolve(spec: ResourcesSpec, service: str, place: Place) -> Resolved:
    try:
        return resolve(spec, service, place)
    except SpecError as err:
        raise CommandFailed(str(err), exit_code=SpecError.exit_code) from None


def _account(platform: Any, given: str | None) -> str:
    if given:
        if not (given.isdigit() and len(given) == 12):
            raise CommandFailed(f"--account-id must be 12 digits (got {given!r})", exit_code=2)
        return given
    from flotilla.aws import account_id

    try:
        return account_id(platform)
    except (BotoCoreError, ClientError) as err:
        raise CommandFailed(
            f"cannot tell the AWS account ({err}); pass --account-id or set FLOTILLA_AWS_ACCOUNT_ID",
            exit_code=2,
        ) from None


_file = click.option(
    "--file",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"spec file (default: {SPEC_FILE} next to the service).",
)
_env = click.option("--env", help="environment in physical names (default FLOTILLA_ENV).")


@click.command()
@click.argument("service")
@_file
@_env
@click.option("--dry-run", is_flag=True, help="only read; say what would be created or updated.")
def provision(service: str, file: Path | None, env: str | None, dry_run: bool) -> None:
    """Create SERVICE's AWS resources idempotently (the emulator with FLOTILLA_AWS_ENDPOINT_URL)."""
    from flotilla.aws import client
    from flotilla.resources.provision import ProvisionError, summary
    from flotilla.resources.provision import provision as run

    svc, platform, spec, env_name = _load(service, file, env)
    resolved = _resolve(spec, svc.name, Place(env_name, platform.aws_region, _account(platform, None)))
    where = platform.aws_endpoint_url or f"account {resolved.place.account_id}"
    click.echo(f"provisioning {svc.name} ({env_name}, {platform.aws_region}) in {where}")
    try:
        # One client per AWS service for the whole run, not one per resource.
        clients = functools.cache(lambda name: client(name, platform, traced=False))
        changes = run(spec, resolved, clients, dry_run=dry_run)
    except ProvisionError as err:
        raise CommandFailed(str(err), exit_code=1) from None
    except (BotoCoreError, ClientError) as err:
        raise CommandFailed(f"AWS refused: {err}") from None
    for change in changes:
        click.echo(change.line())
    click.echo(summary(changes))


@click.command("iam-policy")
@click.argument("service")
@_file
@_env
@click.option("--account-id", envvar="FLOTILLA_AWS_ACCOUNT_ID", help="12-digit account (default: ask STS).")
@click.option("--region", help="region in ARNs (default FLOTILLA_AWS_REGION).")
@click.option(
    "--ssm/--no-ssm", default=None, help="grant reading SSM settings (default FLOTILLA_SSM_ENABLED)."
)
def iam_policy(  # noqa: PLR0917 - click passes options as arguments
    service: str,
    file: Path | None,
    env: str | None,
    account_id: str | None,
    region: str | None,
    ssm: bool | None,
) -> None:
    """Print the least-privilege IAM policy SERVICE needs at run time, as JSON."""
    from flotilla.resources.iam import policy_document

    svc, platform, spec, env_name = _load(service, file, env)
    place = Place(env_name, region or platform.aws_region, _account(platform, account_id))
    resolved = _resolve(spec, svc.name, place)
    document = policy_document(spec, resolved, ssm_enabled=platform.ssm_enabled if ssm is None else ssm)
    click.echo(json.dumps(document, indent=2))
