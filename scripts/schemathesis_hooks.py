"""Schemathesis hooks for scripts/smoke.

cargo lambda watch, the local API Gateway, answers 500 by itself, before any function runs, for
a JSON or text request whose body is not UTF-8, and for a header value beyond ASCII (an HTTP client sends
it as Latin-1, so it arrives as bytes that are not UTF-8): neither fits in an event. Such bodies
are left out and such header values escaped here. What the functions answer to them (400 for the
body, which arrives base64-encoded from API Gateway; 422 for an Idempotency-Key that is not
printable ASCII) is covered by the Rust tests.

It also loses a function's answer now and then, when the answer is larger than a few kilobytes
and requests run concurrently (a list of files, a plan with 100 part URLs): the function answers,
and cargo lambda answers the client 500 with a body of its own (`https://httpstatuses.com/500`,
no `x-request-id`: every answer of ours has one). Measured: 1 of 40 concurrent lists of 100
files, none of 40 lists of one file. Such a request is sent again (at most three times) and the
retry's answer is checked instead; each retry is reported on stderr.
"""

import sys

import requests
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


def lost_by_cargo_lambda(response):
    return (
        response.status_code == 500
        and "x-request-id" not in response.headers
        and b"httpstatuses.com/500" in response.content
    )


def not_text(request):
    """A body that is not UTF-8 under a text media type: cargo lambda cannot put it in an event
    and answers 500 itself (API Gateway passes such a body on base64-encoded). The coverage phase
    sends one: a form as text/plain."""
    media_type = request.headers.get("Content-Type", "").lower()
    if not isinstance(request.body, bytes) or not (media_type.startswith("text/") or "json" in media_type):
        return False
    try:
        request.body.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


@schemathesis.hook
def after_call(ctx, case, response):
    if lost_by_cargo_lambda(response) and not_text(response.request):
        # Sent again as bytes, which cargo lambda passes on as API Gateway does: the function's
        # own answer to the undeclared media type (400, not a form) is what gets checked.
        request = response.request.copy()
        request.headers["Content-Type"] = "application/octet-stream"
        print(
            f"schemathesis_hooks: cargo lambda cannot pass on a body that is not UTF-8 as text; "
            f"sending {request.method} {request.url} as application/octet-stream",
            file=sys.stderr,
        )
        with requests.Session() as session:
            retried = session.send(request, timeout=60)
        fresh = type(response).from_requests(retried, verify=response.verify)
        for slot in type(response).__slots__:
            setattr(response, slot, getattr(fresh, slot))
    for _ in range(3):
        if not lost_by_cargo_lambda(response):
            return
        print(
            f"schemathesis_hooks: cargo lambda lost the answer to {response.request.method} "
            f"{response.request.url}; sending it again",
            file=sys.stderr,
        )
        with requests.Session() as session:
            retried = session.send(response.request, timeout=60)
        fresh = type(response).from_requests(retried, verify=response.verify)
        for slot in type(response).__slots__:
            setattr(response, slot, getattr(fresh, slot))
