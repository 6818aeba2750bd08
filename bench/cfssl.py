"""cfssl side by side: `cfssl serve` with a P-256 CA, driven at /api/v1/cfssl/newcert.

newcert generates the key and signs, like issuing without a CSR here (cfssl stores nothing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.load import LoadResult, Request, run_wrk
from bench.services import free_port

NEWCERT = "/api/v1/cfssl/newcert"


def _body(n: int) -> bytes:
    name = f"cfssl-{n}.bench.example"
    request = {"CN": name, "hosts": [name], "key": {"algo": "ecdsa", "size": 256}}
    return json.dumps({"request": request}).encode()


def run_cfssl(
    concurrency: int, seconds: float, max_requests: int, warmup: float, threads: int
) -> LoadResult | str:
    """The wrk result, or why it was skipped."""
    if shutil.which("cfssl") is None:
        return "skipped: cfssl not installed (apt-get install golang-cfssl)"
    with tempfile.TemporaryDirectory(prefix="bench-cfssl-") as tmp:
        work = Path(tmp)
        (work / "ca.json").write_text(
            json.dumps({"CN": "Bench cfssl CA", "key": {"algo": "ecdsa", "size": 256}})
        )
        made = subprocess.run(
            ["cfssl", "gencert", "-initca", str(work / "ca.json")],
            capture_output=True,
            text=True,
            check=True,
        )
        ca = json.loads(made.stdout)
        (work / "ca.pem").write_text(ca["cert"])
        (work / "ca-key.pem").write_text(ca["key"])
        port = free_port()
        command = ["cfssl", "serve", "-address", "127.0.0.1", "-port", str(port)]
        command += ["-ca", str(work / "ca.pem"), "-ca-key", str(work / "ca-key.pem")]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.post(url + NEWCERT, content=_body(0), timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    return "skipped: cfssl serve did not come up"
                time.sleep(0.2)
            requests = [
                Request("POST", NEWCERT, {"Content-Type": "application/json"}, _body(n))
                for n in range(64)
            ]
            if warmup:
                run_wrk(url, requests, concurrency, warmup, max_requests, threads)
            return run_wrk(url, requests, concurrency, seconds, max_requests, threads)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
