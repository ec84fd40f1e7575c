#!/usr/bin/env python3
"""A real SMTP server for hookgate's email tests (aiosmtpd).

Listens on 127.0.0.1 (port 0 = any free port), prints "ready PORT" once it
accepts connections, and appends one JSON line per accepted message to --out:

    {"mail_from", "rcpt_tos", "data" (the raw message), "tls" (the session was
     encrypted: STARTTLS or implicit), "auth_user" (null if none),
     "peer" (the client's address: one per connection), "content_type", "headers": [[name, value], ...] (decoded),
     "parts": [{"content_type", "content"}, ...] (leaf parts, in order, decoded)}

The MIME parse is Python's own `email` package, so the tests check the message
against an independent reader.

Options:
  --tls-cert/--tls-key  certificate and key for TLS
  --starttls            offer STARTTLS and require it before MAIL (needs the cert)
  --implicit-tls        TLS from the first byte (SMTPS, needs the cert)
  --auth USER:PASSWORD  require AUTH (PLAIN or LOGIN) with these credentials
  --fail-data N:CODE    answer the first N DATA commands with CODE (e.g. 2:451)
  --reject-rcpt ADDR:CODE  answer RCPT TO:<ADDR> with CODE (e.g. 550)
"""

import argparse
import asyncio
import json
import ssl
import sys
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

REPLY_TEXT = {
    4: "4.3.0 hookgate test server: try again later",
    5: "5.1.1 hookgate test server: mailbox unavailable",
}


def reply(code):
    return f"{code} {REPLY_TEXT.get(code // 100, 'test answer')}"


def split_pair(value, what):
    left, sep, right = value.rpartition(":")
    if not sep or not left:
        sys.exit(f"--{what} wants X:Y, got {value!r}")
    return left, right


class Handler:
    def __init__(self, args):
        self.out = args.out
        self.fail_left = 0
        self.fail_code = None
        if args.fail_data:
            n, code = split_pair(args.fail_data, "fail-data")
            self.fail_left, self.fail_code = int(n), int(code)
        self.reject = None
        if args.reject_rcpt:
            addr, code = split_pair(args.reject_rcpt, "reject-rcpt")
            self.reject = (addr.lower(), int(code))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and address.lower() == self.reject[0]:
            return reply(self.reject[1])
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_left > 0:
            self.fail_left -= 1
            return reply(self.fail_code)
        raw = envelope.original_content or envelope.content
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": raw.decode("utf-8", errors="replace"),
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": session.auth_data if session.authenticated else None,
            "peer": "%s:%s" % tuple(session.peer[:2]),
        }
        record.update(parse(raw))
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 2.0.0 OK: queued"


def parse(raw):
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    parts = [
        {"content_type": p.get_content_type(), "content": p.get_content()}
        for p in msg.walk()
        if not p.is_multipart()
    ]
    return {
        "content_type": msg.get_content_type(),
        "headers": [[k, str(v)] for k, v in msg.items()],
        "parts": parts,
    }


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, auth_data=user if ok else None)

    return check


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--auth")
    p.add_argument("--fail-data")
    p.add_argument("--reject-rcpt")
    args = p.parse_args()

    context = None
    if args.starttls or args.implicit_tls:
        if not (args.tls_cert and args.tls_key):
            sys.exit("--starttls and --implicit-tls need --tls-cert and --tls-key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)

    handler = Handler(args)
    options = {"hostname": "smtp.test", "auth_require_tls": False}
    if args.auth:
        user, password = split_pair(args.auth, "auth")
        options.update(auth_required=True, authenticator=authenticator(user, password))
    if args.starttls:
        options.update(tls_context=context, require_starttls=True)
    if args.auth and args.starttls:
        # AUTH only after STARTTLS, as a real submission server does.
        options.update(auth_require_tls=True)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, loop=loop, **options),
        host="127.0.0.1",
        port=args.port,
        ssl=context if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
