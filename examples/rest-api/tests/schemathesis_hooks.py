"""schemathesis hooks for examples/rest-api (loaded through SCHEMATHESIS_HOOKS).

A real client sends a fresh Idempotency-Key for each distinct request (a UUID, as the IETF
draft recommends) and reuses it only to retry the same request. Hypothesis draws header
values from a small space and shrinks towards the same few strings, so two different bodies
would often share a key, which the draft answers with 422. The `before_call` hook gives every *valid*
drawn key a fresh UUID, so the positive-data check sees what a real client sends; an invalid
key (negative testing) is left as drawn, so its rejection is still tested. Key reuse itself
is covered by the example's HTTP tests.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # Every phase (coverage, fuzzing, stateful) passes through here just before sending.
    headers = case.headers
    if not headers:
        return
    for name in list(headers):
        if name.lower() == "idempotency-key":
            value = headers[name]
            if isinstance(value, str) and VALID_KEY.fullmatch(value):
                headers[name] = str(uuid.uuid4())
