#!/usr/bin/env python3
"""A webhook receiver for trying Tocsin out: prints one line per notification it receives.

    python3 examples/receivers/webhook.py [--listen 127.0.0.1:5001]

Tocsin POSTs Alertmanager's webhook message (version "4") to it; it answers 200 and prints the
status, the group key, and each alert's name, labels and summary. Only the standard library.
"""

import argparse
import datetime
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A webhook message is small; a bigger body is refused rather than read.
MAX_BODY_BYTES = 4 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_error(413, "body too large")
            return
        body = self.rfile.read(length)
        try:
            message = json.loads(body)
        except ValueError as error:
            self.send_error(400, f"not JSON: {error}")
            return
        now = datetime.datetime.now().strftime("%H:%M:%S")
        alerts = message.get("alerts", [])
        print(f"{now} {message.get('status')} from {message.get('externalURL')} "
              f"group {message.get('groupKey')}: {len(alerts)} alert(s)", flush=True)
        for alert in alerts:
            labels = dict(alert.get("labels", {}))
            name = labels.pop("alertname", "")
            summary = alert.get("annotations", {}).get("summary", "")
            shown = ", ".join(f"{k}={v!r}" for k, v in sorted(labels.items()))
            print(f"    {alert.get('status')} {name} {{{shown}}} {summary}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        # The notification lines above say everything; no access log.
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:5001", help="host:port to listen on")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    print(f"listening on http://{args.listen}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
