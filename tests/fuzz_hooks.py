"""schemathesis hooks (SCHEMATHESIS_HOOKS=tests.fuzz_hooks): how to make an OCSP request body.

schemathesis knows no serializer for `application/ocsp-request`; the responder must answer
any bytes at all (malformedRequest as an OCSP status), so arbitrary bytes are what it gets.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type("application/ocsp-request", st.binary(min_size=1, max_size=4096))
