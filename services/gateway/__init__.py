"""gateway: the store's front door. Routes /api/<version>/<service>/... to upstream services after
authenticating the caller (JWT or API key), checking the route's scope and throttling per client."""

from flotilla import Service
from flotilla.config import PlatformSettings
from flotilla.service import lazy
from services.gateway.settings import Settings


def _preflight(platform: PlatformSettings, settings: Settings) -> None:
    from services.gateway.app import principal_secret

    principal_secret(platform)


service = Service(
    name="gateway",
    settings=Settings,
    create_app=lazy("services.gateway.app:create_app"),
    description=__doc__ or "",
    preflight=_preflight,
)
