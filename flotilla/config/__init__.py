"""Typed settings: environment variables, optionally overlaid by AWS SSM Parameter Store.

Usable without the rest of the chassis::

    from flotilla.config import ServiceSettings, load_settings

    class Settings(ServiceSettings, env_prefix="ORDERS_"):
        database_url: SecretStr

    settings = load_settings(Settings, service="orders")
"""

from flotilla.config.errors import ConfigError
from flotilla.config.settings import (
    PlatformSettings,
    ServiceSettings,
    effective_config,
    load_platform,
    load_settings,
)
from flotilla.config.ssm import ParameterStore

__all__ = [
    "ConfigError",
    "ParameterStore",
    "PlatformSettings",
    "ServiceSettings",
    "effective_config",
    "load_platform",
    "load_settings",
]
