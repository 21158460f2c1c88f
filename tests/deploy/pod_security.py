"""The Pod Security Standard `restricted` (with baseline) as a check on rendered pod specs.

The namespace enforces `restricted` (charts/flotilla-namespace), so the API server would refuse any pod that breaks
one of these rules; checking the rendered specs here finds that before a cluster does.
"""

from __future__ import annotations

from typing import Any

# restricted: the only volume types allowed
VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *spec.get("initContainers", []),
        *spec.get("containers", []),
        *spec.get("ephemeralContainers", []),
    ]


def _context_violations(where: str, sc: dict[str, Any]) -> list[str]:
    """Rules that hold for a pod-level and a container-level security context alike."""
    out = []
    if sc.get("runAsUser") == 0:
        out.append(f"{where}: runAsUser 0")
    if sc.get("runAsNonRoot") is False:
        out.append(f"{where}: runAsNonRoot false")
    seccomp = sc.get("seccompProfile")
    if seccomp is not None and seccomp.get("type") not in SECCOMP_TYPES:
        out.append(f"{where}: seccompProfile {seccomp.get('type')}")
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or "user" in selinux or "role" in selinux:
        out.append(f"{where}: seLinuxOptions {selinux}")
    apparmor = sc.get("appArmorProfile")
    if apparmor is not None and apparmor.get("type") == "Unconfined":
        out.append(f"{where}: appArmorProfile Unconfined")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        out.append(f"{where}: hostProcess")
    return out


def restricted_violations(where: str, spec: dict[str, Any]) -> list[str]:
    """Every way a pod spec breaks Pod Security `restricted`; empty when the API server would admit it."""
    out: list[str] = []
    pod = spec.get("securityContext") or {}
    out += _context_violations(where, pod)
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            out.append(f"{where}: {flag}")
    if pod.get("sysctls"):
        out.append(f"{where}: sysctls {pod['sysctls']}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= VOLUME_TYPES:
            out.append(f"{where}: volume {volume['name']} of type {sorted(kinds - VOLUME_TYPES)}")
    for c in _containers(spec):
        at = f"{where}/{c['name']}"
        sc = c.get("securityContext") or {}
        out += _context_violations(at, sc)
        if sc.get("privileged"):
            out.append(f"{at}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{at}: allowPrivilegeEscalation is not false")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{at}: procMount {sc['procMount']}")
        caps = sc.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            out.append(f"{at}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"{at}: capabilities add {caps['add']}")
        if not (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            out.append(f"{at}: runAsNonRoot is not set on the pod or the container")
        if "seccompProfile" not in sc and "seccompProfile" not in pod:
            out.append(f"{at}: no seccompProfile on the pod or the container")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            out.append(f"{at}: hostPort")
    return out
