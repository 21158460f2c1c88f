"""Suite-wide set-up: test environment defaults and the throwaway backend fixtures."""

from __future__ import annotations

import os
from pathlib import Path

# Tests must never reach a real AWS account, whatever the developer's shell holds.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

if (Path(__file__).parent / "backends" / "plugin.py").exists():
    pytest_plugins = ["tests.backends.plugin"]
