"""sample: the smallest chassis service, a template for new ones and the subject of the chassis tests."""

from flotilla import Service
from services.sample.settings import Settings


def _create_app(settings: Settings):  # type: ignore[no-untyped-def]
    from services.sample.app import create_app

    return create_app(settings)


service = Service(name="sample", settings=Settings, create_app=_create_app, description=__doc__ or "")
