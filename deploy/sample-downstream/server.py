"""A sample downstream for hookgate: it accepts a delivery only when its
x-signature is the hex HMAC-SHA256 of the raw body under the shared secret
(DESIGN.md section 5), exactly as a receiver written from the provider's docs
would. Standard library only, so `python:3-slim` runs it with no build step.

    DOWNSTREAM_WEBHOOK_SECRET=... python3 server.py    # PORT defaults to 3000

Answers 204 for a valid signature (hookgate marks the delivery delivered) and
401 otherwise (a permanent failure: the delivery is dead-lettered, visible in
GET /admin/deliveries?state=dead). It dedupes on x-hookgate-delivery-id, as
every receiver should: a delivery may arrive more than once (a replica that
crashed mid-attempt, a lost answer).
"""

import hashlib
import hmac
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("DOWNSTREAM_WEBHOOK_SECRET", "").encode()
PORT = int(os.environ.get("PORT", "3000"))
# Delivery ids seen (bounded: this is a demo, a real receiver keeps them in
# its database beside the work the delivery caused).
SEEN = set()
SEEN_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        got = (self.headers.get("x-signature") or "").strip().lower()
        delivery = self.headers.get("x-hookgate-delivery-id", "-")
        if not SECRET or not hmac.compare_digest(expected, got):
            print(f"REJECTED delivery={delivery}: bad or missing x-signature", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        with SEEN_LOCK:
            duplicate = delivery in SEEN
            if len(SEEN) > 100_000:
                SEEN.clear()
            SEEN.add(delivery)
        print(
            f"verified delivery={delivery} event={self.headers.get('x-hookgate-event-id', '-')}"
            f" attempt={self.headers.get('x-hookgate-attempt', '-')}"
            f" route={self.headers.get('x-hookgate-route', '-')}"
            f" bytes={len(body)}{' duplicate' if duplicate else ''}",
            flush=True,
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        # One line per delivery above is enough; no access log.
        pass


def main():
    if not SECRET:
        print("DOWNSTREAM_WEBHOOK_SECRET is not set: every delivery is rejected", flush=True)
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    # As PID 1 in a container Python has no SIGTERM handler: exit at once
    # instead of waiting for the engine's kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"sample downstream listening on :{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
