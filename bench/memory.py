#!/usr/bin/env python3
"""bench/memory.py: hookgate's resident memory (VmRSS, and its peak VmHWM,
from /proc) idle and under load, to size the containers in deploy/.

    cargo build --release && python3 bench/memory.py [CONFIG]

CONFIG defaults to rules.example.yaml; a Kubernetes ConfigMap file (such as
deploy/kubernetes/sidecar/hookgate-config.yaml) is read for its rules.yaml.
Its listen addresses are moved to free
loopback ports and its queue to a temporary directory; every http target is
pointed at a local sink that answers 204 (or, in the "target down" phase, at
a closed port). Phases, each reported with RSS at its end and the peak so far:

  idle        10 s after start
  steady      RATE events/s (default 200) of about 1 KiB for DURATION s (60)
  large       LARGE_SENDERS (16) senders of LARGE_MIB (1) MiB bodies for 10 s
              (bodies being received, stored and delivered all count)
  backlog     the sink gone: BACKLOG (20000) events pile up, pending

Standard library only. Prints a Markdown table; KEEP=1 keeps the temporary
directory (config, queue, hookgate's log).
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("HOOKGATE", os.path.join(ROOT, "target/release/hookgate"))
RATE = int(os.environ.get("RATE", "200"))
DURATION = int(os.environ.get("DURATION", "60"))
BACKLOG = int(os.environ.get("BACKLOG", "20000"))
LARGE_SENDERS = int(os.environ.get("LARGE_SENDERS", "16"))
LARGE_MIB = int(os.environ.get("LARGE_MIB", "1"))
SECRET = "bench-secret-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    mib = lambda k: int(fields[k].split()[0]) / 1024
    return mib("VmRSS"), mib("VmHWM")


NEXT = iter(range(10**12))
NEXT_LOCK = threading.Lock()


def unique():
    """A fresh number per event: equal bodies would be deduplicated."""
    with NEXT_LOCK:
        return next(NEXT)


def event(i, pad=700):
    return json.dumps({
        "event": "status-changed", "type": "VOICE", "companionId": f"cmp_{i}",
        "data": {"status": "ended", "endedReason": "customer-ended-call",
                 "startedAt": "2025-01-01T00:00:00Z",
                 "messages": [{"role": "user", "message": "x" * pad}]},
    }).encode()


def post(conn, path, body):
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    conn.request("POST", path, body, {"x-signature": sig, "content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def sender(port, path, bodies, stop, counts, pace=None, count=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    next_at = time.monotonic()
    while not stop.is_set() and (count is None or i < count):
        status = post(conn, path, bodies())
        with NEXT_LOCK:
            counts[status] = counts.get(status, 0) + 1
        i += 1
        if pace:
            next_at += pace
            time.sleep(max(0.0, next_at - time.monotonic()))


def run_senders(n, port, path, bodies, seconds, pace=None, count=None):
    """n senders for `seconds`, or until each has sent `count`."""
    stop, counts = threading.Event(), {}
    threads = [threading.Thread(target=sender, args=(port, path, bodies, stop, counts, pace, count))
               for _ in range(n)]
    for t in threads:
        t.start()
    if count is None:
        time.sleep(seconds)
        stop.set()
    for t in threads:
        t.join()
    return counts


def main():
    config_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "rules.example.yaml")
    text = open(config_path).read()
    if re.search(r"^kind: ConfigMap", text, re.M):
        block = text.split("rules.yaml: |\n", 1)[1].splitlines()
        indent = len(block[0]) - len(block[0].lstrip())
        text = "\n".join(l[indent:] for l in block if l[:indent].strip() == "") + "\n"
    work = tempfile.mkdtemp(prefix="hookgate-memory.")
    port, admin = free_port(), free_port()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}/sink"
    text = re.sub(r"(\n\s*listen: )\S+(.*\n)", lambda m: m.group(1) + "LISTEN" + m.group(2), text)
    text = text.replace("LISTEN", f"127.0.0.1:{port}", 1).replace("LISTEN", f"127.0.0.1:{admin}", 1)
    text = re.sub(r"(\n\s*path: )\S*queue\.db", rf"\g<1>{work}/queue.db", text)
    head, targets = text.split("\ntargets:", 1)
    text = head + "\ntargets:" + re.sub(r"(\n\s*url: )\S+", rf"\g<1>{sink_url}", targets)
    config = os.path.join(work, "rules.yaml")
    open(config, "w").write(text)
    path = re.search(r"\n\s*path: (/\S+)(?<!queue\.db)\n", text).group(1)

    # Variables already set (REDIS_URL for a Redis config) are kept.
    env = dict(os.environ, OUTRIVAL_WEBHOOK_SECRET=SECRET, HOOKGATE_LOG="warn")
    for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text):
        env.setdefault(var, "bench-value-0123456789abcdef")
    gw = subprocess.Popen([BINARY, "serve", "-c", config], env=env, cwd=work,
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
    rows = []
    try:
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", admin, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        time.sleep(10)
        rows.append(("idle, 10 s after start", "", *rss(gw.pid)))

        small = lambda: event(unique())
        counts = run_senders(4, port, path, small, DURATION, pace=4 / RATE)
        rows.append((f"steady: {RATE} events/s of {len(small())} B for {DURATION} s",
                     json.dumps(counts), *rss(gw.pid)))

        pad = LARGE_MIB * 1024 * 1024
        counts = run_senders(LARGE_SENDERS, port, path, lambda: event(unique(), pad=pad), 10)
        rows.append((f"large: {LARGE_SENDERS} senders of {LARGE_MIB} MiB bodies for 10 s",
                     json.dumps(counts), *rss(gw.pid)))

        sink.shutdown()
        sink.server_close()
        sent = run_senders(4, port, path, small, 0, count=BACKLOG // 4)
        time.sleep(5)
        rows.append((f"backlog: {BACKLOG} more events, the http targets down",
                     json.dumps(sent), *rss(gw.pid)))
    finally:
        gw.terminate()
        gw.wait()
        if os.environ.get("KEEP"):
            print(f"kept {work} (config, queue, hookgate's log)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"hookgate {BINARY} on {os.path.relpath(config_path, ROOT)}\n")
    print("| phase | answers | RSS MiB | peak RSS MiB |")
    print("|---|---|---:|---:|")
    for phase, answers, now, peak in rows:
        print(f"| {phase} | {answers} | {now:.0f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
