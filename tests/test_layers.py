"""The two services never import each other, not even through the core they share."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import account_api
import account_api.accounts.views
import account_api.auth.views
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] == "certificate_api")))
"""


def test_the_account_service_imports_nothing_of_the_certificate_service() -> None:
    found = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == ""


CORE_PROBE = """
import importlib
import pkgutil
import sys
import core
for module in pkgutil.iter_modules(core.__path__):
    importlib.import_module(f"core.{module.name}")
door = ("certificate_api.errors", "certificate_api.database", "certificate_api.conversions")
print(",".join(sorted(m for m in sys.modules if m in door)))
"""


def test_the_core_imports_neither_a_door_s_errors_nor_its_statement_layer() -> None:
    found = subprocess.run(
        [sys.executable, "-c", CORE_PROBE], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == ""
