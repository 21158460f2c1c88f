"""Every value is documented where it is declared and in the chart README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from deploy_support import NAMESPACE_CHART, SERVICE_CHART, STORE_CHART

FREE_FORM = {
    "upstreams",
    "config",
    "commonLabels",
    "commonAnnotations",
    "podAnnotations",
    "podLabels",
    "nodeSelector",
    "affinity",
    "strategy",
    "resources",
    "podSecurityContext",
    "containerSecurityContext",
    "annotations",
    "labels",
    "gateway",
    "catalog",
    "cart",
}


def _leaves(values: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key.startswith("x-"):
            continue
        if isinstance(value, dict) and value and key not in FREE_FORM:
            out += _leaves(value, f"{path}.")
        else:
            out.append(path)
    return out


@pytest.mark.parametrize("chart", [SERVICE_CHART, STORE_CHART, NAMESPACE_CHART], ids=lambda p: p.name)
def test_every_value_is_documented(chart: Path) -> None:
    text = (chart / "values.yaml").read_text()
    params = set(re.findall(r"## @param (\S+)", text))
    readme = (chart / "README.md").read_text()
    undocumented = [
        leaf
        for leaf in _leaves(yaml.safe_load(text))
        if not any(leaf == p or leaf.startswith(p + ".") for p in params)
    ]
    assert undocumented == [], "add `## @param` lines to values.yaml"
    missing = [p for p in params if f"`{p}`" not in readme]
    assert missing == [], "README.md lacks these values (regenerate the table)"
