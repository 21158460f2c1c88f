"""The chassis' import rules (docs/architecture.md), checked on the real import graph.

``lint-imports`` (import-linter) reads the contracts in pyproject.toml: pieces import downwards only,
the pieces of one layer are independent, and nothing in the chassis imports the store, the dev tools, the
tests or the benchmarks. The mutation tests prove the check bites: a copy of the chassis with one forbidden
import added must break a contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*, chassis: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with this project's contracts, on the installed chassis or on a copy of it."""
    # lint-imports puts its working directory first on sys.path: run it where the chassis to check is.
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=chassis or ROOT,
        check=False,
    )


def test_the_chassis_keeps_its_import_contracts() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # A primitive reaching up into the composer.
        ("clock.py", "import flotilla.app", "pieces import downwards only"),
        # Two pieces of one layer coupled (inside a function: deferred imports count).
        ("ratelimit/bucket.py", "def _f():\n    import flotilla.cache", "pieces import downwards only"),
        # The chassis naming the store.
        ("outage.py", "import services.gateway", "the chassis never imports the store"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    copy = tmp_path / "flotilla"
    shutil.copytree(ROOT / "flotilla", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + "\n\n" + line + "\n")
    result = lint_imports(chassis=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(contract), result.stdout


def test_no_piece_imports_the_package_facade() -> None:
    """``flotilla`` itself (``from flotilla import create_app``) is for services: a piece that used it
    would import the composer through the back door."""
    graph = grimp.build_graph("flotilla", exclude_type_checking_imports=True)
    importers = sorted(m for m in graph.find_modules_that_directly_import("flotilla") if m != "flotilla")
    assert importers == []
