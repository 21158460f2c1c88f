"""The lines printed once the stack is ready: where to send requests, a token to paste, logs, traces, backends.

Example requests are only shown for services that are running; the cart one carries a freshly
issued dev token, so the first curl a newcomer pastes works.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from flotilla_dev.localstack.stack import Plan

# Example calls per service: (path under the gateway or the service, scopes the token needs).
# Through the gateway the path is /api/v1/<service><path>; without a gateway it goes straight to the service.
EXAMPLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "catalog": ("/products?limit=3", ()),
    "cart": ("/cart", ("cart",)),
    "sample": ("/hello/world", ()),
}
DEMO_USER = "alice"


def dev_token(plan: Plan, scopes: tuple[str, ...]) -> str | None:
    """A dev access token from the running dev issuer's key, or None without a dev issuer."""
    if plan.issuer_url is None:
        return None
    from flotilla_dev.issuer import DevIssuer

    return DevIssuer(plan.issuer_dir, url=plan.issuer_url).issue(DEMO_USER, scopes)


def gateway_routes(plan: Plan) -> dict[str, str]:
    """Services the gateway routes under /api/v1 by default (its ``routes`` setting's default),
    each with the path prefix the route puts in front on the service's side."""
    gateway = plan.gateway
    if gateway is None:
        return {}
    field = gateway.module.settings.model_fields.get("routes")
    try:
        routes = field.get_default(call_default_factory=True) if field is not None else {}
        return {name: getattr(route, "prefix", "") or "" for name, route in routes.get("v1", {}).items()}
    except (AttributeError, TypeError):
        return {}


def example_url(plan: Plan, service: str, path: str) -> str:
    gateway = plan.gateway
    routes = gateway_routes(plan)
    if gateway is not None and service in routes:
        prefix = routes[service]
        return f"{gateway.url}/api/v1/{service}{path.removeprefix(prefix) if prefix else path}"
    return f"{plan.service(service).url}{path}"


def render(plan: Plan) -> str:
    gateway = plan.gateway
    front = gateway.url if gateway else plan.services[0].url
    width = 10
    lines = ["", "=" * 78, f"Flotilla local stack is ready: {front}", ""]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<{width}} {text}")

    for unit in plan.services:
        if unit.name not in EXAMPLES or unit is gateway:
            continue
        path, scopes = EXAMPLES[unit.name]
        command = ["curl", "-s", example_url(plan, unit.name, path)]
        token = dev_token(plan, scopes) if scopes else None
        if token:
            command[2:2] = ["-H", f"Authorization: Bearer {token}"]
        row(unit.name, shlex.join(command))
    if plan.issuer_url:
        token_cmd = f'flotilla token --sub {DEMO_USER} --scope "cart"'
        if plan.issuer_dir != Path(".flotilla/dev-issuer").resolve() or not plan.issuer_url.endswith(":8090"):
            token_cmd = (
                f"FLOTILLA_DEV_ISSUER_DIR={shlex.quote(str(plan.issuer_dir))} "
                f"FLOTILLA_DEV_ISSUER_URL={plan.issuer_url} {token_cmd}"
            )
        row("token", token_cmd)
    lines.append("")
    row("services", ", ".join(f"{u.name} {u.url}" for u in plan.services))
    row("backends", f"AWS emulator (moto) {plan.emulator_url}")
    if plan.postgres is not None:
        row(
            "",
            f"Postgres (local process) 127.0.0.1:{plan.postgres.port}, data in {plan.state_dir / 'postgres'}",
        )
    if plan.redis_port is not None:
        row("", f"Redis (local process) 127.0.0.1:{plan.redis_port}")
    if plan.issuer_url:
        row("", f"dev token issuer {plan.issuer_url}")
    for note in plan.notes:
        row("fallback", note)
    row("logs", f"above, and one file per process in {plan.log_dir}/")
    traces = "flotilla traces"
    if plan.trace_file != Path(".flotilla/traces.jsonl").resolve():
        traces += f" --file {shlex.quote(str(plan.trace_file))}"
    row("traces", f"{traces}   (every service writes spans to {plan.trace_file})")
    row("stop", "Ctrl-C")
    lines.append("=" * 78)
    return "\n".join(lines)
