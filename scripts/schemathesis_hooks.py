"""Schemathesis hooks for scripts/smoke.

cargo lambda watch, the local API Gateway, answers 500 by itself, before any function runs, for
a JSON request whose body is not UTF-8, and for a header value beyond ASCII (an HTTP client sends
it as Latin-1, so it arrives as bytes that are not UTF-8): neither fits in an event. Such bodies
are left out and such header values escaped here. What the functions answer to them (400 for the
body, which arrives base64-encoded from API Gateway; 422 for an Idempotency-Key that is not
printable ASCII) is covered by the Rust tests.
"""

import schemathesis


@schemathesis.hook
def filter_body(ctx, body):
    if isinstance(body, bytes):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
    elif isinstance(body, str):
        try:
            body.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # An HTTP client sends header text as Latin-1: anything beyond ASCII would arrive as bytes
    # that are not UTF-8. The coverage phase generates such values without passing them through
    # filters, so they are escaped here instead (with backslashes: a key that stays invalid).
    for name, value in list((case.headers or {}).items()):
        if isinstance(value, str) and not value.isascii():
            case.headers[name] = value.encode("ascii", "backslashreplace").decode("ascii")
