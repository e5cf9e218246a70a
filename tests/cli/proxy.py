#!/usr/bin/env python3
"""A forward HTTP proxy on loopback that logs every request it passes on: the witness of
scripts/cli-test, which points the command line at it with HTTP_PROXY and reads from the log
which parts were PUT, in which run, and what storage answered.

Two lines per request: one when it comes ("started"), one once storage (or the API) has
answered and before the answer is passed back, or once the client went away mid-request:

    <run> <METHOD> <"started", the status, or "aborted"> <part number, or "-"> <"checksum" or "-"> <path>

So a reader knows when nothing is in flight: every "started" has its outcome.

`<run>` is the content of --run-file when the request came (the test writes 1, then 2).
With --delay, the answer to a PUT is held back that many seconds after storage answered, so
that an interruption lands while parts are stored but not yet acknowledged.

Usage: proxy.py --port PORT --log FILE --run-file FILE [--delay SECONDS]
"""

import argparse
import http.client
import http.server
import threading
import time
import urllib.parse

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
}
CHUNK = 1 << 20


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--run-file", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1)

    def record(run, method, status, target, checksum):
        part = urllib.parse.parse_qs(target.query).get("partNumber", ["-"])[0]
        with lock:
            log.write(f"{run} {method} {status} {part} {checksum} {target.path}\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def forward(self):
            with open(args.run_file) as f:
                run = f.read().strip() or "0"
            target = urllib.parse.urlsplit(self.path)
            if not target.hostname:
                # Not a proxy request (the test's readiness probe): answered, not passed on.
                self.send_response(400)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            checksum = "checksum" if self.headers.get("x-amz-checksum-sha256") else "-"
            record(run, self.command, "started", target, checksum)
            length = int(self.headers.get("content-length") or 0)
            upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=120)
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    upstream.putheader(name, value)
            upstream.endheaders()
            left = length
            while left > 0:
                chunk = self.rfile.read(min(CHUNK, left))
                if not chunk:
                    # The client went away mid-body: storage never gets a whole request.
                    upstream.close()
                    record(run, self.command, "aborted", target, checksum)
                    self.close_connection = True
                    return
                upstream.send(chunk)
                left -= len(chunk)
            response = upstream.getresponse()
            body = response.read()
            record(run, self.command, response.status, target, checksum)
            if self.command == "PUT" and args.delay:
                time.sleep(args.delay)
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            try:
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client went away meanwhile (interrupted): what storage answered is logged.
                self.close_connection = True
            upstream.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
