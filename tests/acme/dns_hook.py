"""Publishes and withdraws dns-01 TXT records in the test DNS server, for ACME clients.

Run by the clients as a separate process; it reaches the zone through the control
endpoint whose URL is in ACME_TEST_ZONE_URL (see conftest.ZoneControl).

    dns_hook.py present|cleanup FQDN VALUE   lego's `--dns exec` (EXEC_PATH)
    dns_hook.py certbot-auth|certbot-cleanup certbot's manual hooks (CERTBOT_DOMAIN,
                                             CERTBOT_VALIDATION in the environment)
    dns_hook.py certbot-auth-wrong           publishes a value that is not the challenge's
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def send(action: str, name: str, value: str) -> None:
    body = json.dumps({"action": action, "name": name, "value": value}).encode()
    request = urllib.request.Request(
        os.environ["ACME_TEST_ZONE_URL"],
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 204:
            raise SystemExit(f"zone control answered {response.status}")


def main(argv: list[str]) -> None:
    command = argv[0] if argv else ""
    if command in ("present", "cleanup") and len(argv) == 3:
        send("add" if command == "present" else "remove", argv[1], argv[2])
    elif command in ("certbot-auth", "certbot-cleanup", "certbot-auth-wrong"):
        domain = os.environ["CERTBOT_DOMAIN"].removeprefix("*.")
        value = os.environ["CERTBOT_VALIDATION"]
        if command == "certbot-auth-wrong":  # a record that is not the challenge's
            value = value[::-1]
        action = "remove" if command == "certbot-cleanup" else "add"
        send(action, f"_acme-challenge.{domain}", value)
    else:
        raise SystemExit(f"usage: {sys.argv[0]} present|cleanup FQDN VALUE | certbot-auth|...")


if __name__ == "__main__":
    main(sys.argv[1:])
