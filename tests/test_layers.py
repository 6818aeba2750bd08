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
