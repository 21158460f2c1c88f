"""The resources spec as Helm values: the chart's ``awsResources`` schema and the store's generated values file.

The service chart takes ``services/<name>/resources.yaml`` unchanged as its ``awsResources`` value and
renders it as ACK resources (``charts/flotilla-service/templates/aws-resources.yaml``). This module keeps
the chart's side of that contract derived from the chassis, never copied by hand:

- ``awsresources_schema()`` is the JSON schema of ``awsResources`` in the chart's ``values.schema.json``,
  generated from ``ResourcesSpec`` so a typo in a spec fails ``helm template`` as it fails ``flotilla
  provision``;
- ``store_values()`` nests each store service's spec under its alias, for
  ``charts/flotilla/values-resources.yaml``: the spec file stays the one place a service declares its
  resources.

``python -m flotilla.resources.helm store charts/flotilla`` rewrites that file (``--check`` only compares);
``python -m flotilla.resources.helm schema charts/flotilla-service`` rewrites the schema's ``awsResources``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from flotilla.resources.spec import ResourcesSpec, load_spec

SCHEMA_PREFIX = "Resources"
STORE_VALUES_FILE = "values-resources.yaml"
_HEADER = (
    "# Generated from services/<name>/resources.yaml by `python -m flotilla.resources.helm store charts/flotilla`;\n"
    "# do not edit: change the service's resources.yaml and regenerate (a test fails while this file is stale).\n"
    "# Each service's `awsResources` is its spec unchanged; `ack.enabled` (values-eks.yaml) renders it as ACK.\n"
)


def spec_document(path: Path) -> dict[str, Any]:
    """The spec file's document as written (validated first, so a bad spec never reaches the chart)."""
    load_spec(path)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return dict(document or {})


def store_values(chart_values: dict[str, Any], services_dir: Path) -> dict[str, Any]:
    """``{alias: {"awsResources": spec}}`` for each service of the store chart that has a resources.yaml.

    A service of the store is a top-level value with a ``serviceName`` (the umbrella chart's own rule).
    """
    out: dict[str, Any] = {}
    for alias, block in chart_values.items():
        if not (isinstance(block, dict) and "serviceName" in block):
            continue
        path = services_dir / str(block["serviceName"]) / "resources.yaml"
        if path.is_file():
            out[alias] = {"awsResources": spec_document(path)}
    return out


def render_store_values(chart_dir: Path, services_dir: Path) -> str:
    """The exact text of ``<chart_dir>/values-resources.yaml``."""
    chart_values = yaml.safe_load((chart_dir / "values.yaml").read_text(encoding="utf-8")) or {}
    return _HEADER + dump_values(store_values(chart_values, services_dir))


def dump_values(values: dict[str, Any]) -> str:
    """YAML for helm: strings helm would read as YAML 1.1 booleans (``N``, ``on``...) are quoted."""
    return yaml.dump(values, Dumper=_HelmDumper, sort_keys=False)


# Helm reads values as YAML 1.1, where a bare y/n/yes/no/on/off is a boolean: the DynamoDB key type
# ``N`` would arrive as ``false``. PyYAML does not resolve these (so would not quote them); force it.
_YAML11_BOOLEANS = frozenset(
    w
    for word in ("y", "n", "yes", "no", "on", "off", "true", "false")
    for w in (word, word.upper(), word.title())
)


class _HelmDumper(yaml.SafeDumper):
    """SafeDumper that quotes strings a YAML 1.1 reader (helm) would take for booleans."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if value in _YAML11_BOOLEANS else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_HelmDumper.add_representer(str, _represent_str)


def awsresources_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """``(schema of awsResources, definitions it refers to)``, definitions renamed ``Resources<Name>``.

    The chart's schema keeps every definition under one ``$defs``, so the spec's are prefixed to
    stay apart from the upstream-policy ones.
    """
    schema = ResourcesSpec.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})
    renamed = {f"{SCHEMA_PREFIX}{name}": _rename_refs(body) for name, body in definitions.items()}
    root = _rename_refs(schema)
    root["description"] = (
        "The service's resources spec, exactly services/<name>/resources.yaml (docs/resources.md); "
        "generated from flotilla.resources.spec"
    )
    return root, renamed


def update_chart_schema(chart_dir: Path) -> str:
    """The chart's values.schema.json text with ``awsResources`` and its definitions regenerated."""
    path = chart_dir / "values.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    root, definitions = awsresources_schema()
    schema["properties"]["awsResources"] = root
    kept = {k: v for k, v in schema.get("$defs", {}).items() if not k.startswith(SCHEMA_PREFIX)}
    schema["$defs"] = {**kept, **definitions}
    return json.dumps(schema, indent=2) + "\n"


def _rename_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                value.replace("#/$defs/", f"#/$defs/{SCHEMA_PREFIX}")
                if key == "$ref" and isinstance(value, str)
                else _rename_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rename_refs(item) for item in node]
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flotilla.resources.helm", description=__doc__)
    parser.add_argument("what", choices=["store", "schema"])
    parser.add_argument("chart", type=Path)
    parser.add_argument("--services", type=Path, default=Path("services"))
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale; write nothing")
    args = parser.parse_args(argv)
    if args.what == "store":
        target, text = args.chart / STORE_VALUES_FILE, render_store_values(args.chart, args.services)
    else:
        target, text = args.chart / "values.schema.json", update_chart_schema(args.chart)
    current = target.read_text(encoding="utf-8") if target.exists() else ""
    if args.check:
        if current != text:
            print(f"{target} is stale: run python -m flotilla.resources.helm {args.what} {args.chart}")
            return 1
        return 0
    if current != text:
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
