"""Settings of the sample service (``SAMPLE_*``)."""

from pydantic import Field, SecretStr

from flotilla.config import ServiceSettings


class Settings(ServiceSettings, env_prefix="SAMPLE_"):
    greeting: str = Field("Hello", min_length=1, description="Word the service greets with.")
    max_slow_seconds: float = Field(30.0, gt=0, description="Upper bound for /slow.")
    api_token: SecretStr | None = Field(None, description="Example secret: masked and redacted.")
