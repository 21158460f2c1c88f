"""Declarative AWS resources: the spec a service keeps in ``resources.yaml``, its names, IAM and provisioning.

``spec`` (models and validation) and ``naming`` (physical names and ARNs) are pure;
``provision`` talks to AWS; ``iam`` builds the least-privilege policy. See ``docs/resources.md``.
"""

from flotilla.resources.naming import Place, Resolved, physical_name, resolve
from flotilla.resources.spec import ResourcesSpec, SpecError, load_spec, parse_spec

__all__ = [
    "Place",
    "Resolved",
    "ResourcesSpec",
    "SpecError",
    "load_spec",
    "parse_spec",
    "physical_name",
    "resolve",
]
