"""sample: the smallest chassis service, a template for new ones and the subject of the chassis tests."""

from flotilla import Service
from flotilla.service import lazy
from services.sample.settings import Settings

service = Service(
    name="sample",
    settings=Settings,
    create_app=lazy("services.sample.app:create_app"),
    description=__doc__ or "",
)
