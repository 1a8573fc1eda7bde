#!/usr/bin/env python3
"""A real SMTP server for the email integration's tests (Debian's python3-aiosmtpd).

Listens on 127.0.0.1 on a free port, prints "PORT <n>" once ready, and appends one JSON
object per accepted message to --record. Options make it require STARTTLS, speak TLS from the
first byte, require AUTH, offer CRAM-MD5 or only some AUTH mechanisms, advertise them in a given
order, and refuse the first messages with a given reply (to exercise 4xx retries and 5xx
failures). Each record says which mechanism, user name and PLAIN authorization identity the
client used.
"""

import argparse
import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, auth_mechanism

# aiosmtpd warns about settings these tests choose on purpose (AUTH over implicit TLS) and about
# its own deprecated attributes; the test output is not the place for them.
warnings.simplefilter("ignore")
logging.getLogger("mail.log").setLevel(logging.ERROR)


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", required=True, help="file to append accepted messages to")
    parser.add_argument("--cert", help="server certificate (PEM) for STARTTLS or implicit TLS")
    parser.add_argument("--key", help="server private key (PEM)")
    parser.add_argument("--starttls", action="store_true", help="offer STARTTLS")
    parser.add_argument("--require-starttls", action="store_true")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    parser.add_argument("--auth", help="require AUTH with USER:PASSWORD")
    parser.add_argument("--exclude-mechanism", action="append", default=[],
                        help="AUTH mechanism not to offer (PLAIN, LOGIN)")
    parser.add_argument("--cram-md5", metavar="USER:SECRET",
                        help="offer CRAM-MD5 (RFC 2195) and accept this user and secret")
    parser.add_argument("--advertise", metavar="'MECH MECH ...'",
                        help="the EHLO reply's AUTH line, in this order (may name mechanisms "
                             "the server does not implement)")
    parser.add_argument("--fail-times", type=int, default=0,
                        help="refuse this many messages first")
    parser.add_argument("--fail-reply", default="451 4.3.0 Try again later",
                        help="the reply to refused messages")
    return parser.parse_args()


class Handler:
    def __init__(self, args):
        self.args = args
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refused < self.args.fail_times:
            self.refused += 1
            self.log({"refused": self.args.fail_reply})
            return self.args.fail_reply
        transport = server.transport
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None)
        content = envelope.content
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        login = getattr(session, "tocsin_login", None)
        if login is None and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        self.log({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "hello": session.host_name,
            "tls": tls,
            "login": login,
            "mechanism": getattr(session, "tocsin_mechanism", None),
            "identity": getattr(session, "tocsin_identity", None),
            "data": content,
            **parse(content),
        })
        return "250 2.0.0 Message accepted for delivery"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With this hook aiosmtpd leaves the client's name to us.
        session.host_name = hostname
        if self.args.advertise is None:
            return responses
        # aiosmtpd advertises its mechanisms sorted by name; --advertise sets the order.
        return [
            f"250-AUTH {self.args.advertise}" if line.startswith("250-AUTH ") else line
            for line in responses
        ]

    async def handle_AUTH(self, server, session, envelope, args):
        # aiosmtpd checks PLAIN's user and password but drops the authorization identity (the
        # part before the first NUL): keep it from the initial response, then let aiosmtpd go on.
        if len(args) == 2 and args[0].upper() == "PLAIN":
            try:
                identity = base64.b64decode(args[1], validate=True).split(b"\0")[0]
                session.tocsin_identity = identity.decode("utf-8", "replace")
            except ValueError:
                pass
        return MISSING

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server, args):
        user, _, secret = (self.args.cram_md5 or ":").partition(":")
        challenge = f"<{secrets.token_hex(8)}.{int(time.time())}@smtp.tocsin.test>".encode()
        answer = await server.challenge_auth(challenge)
        if answer is MISSING:
            # challenge_auth has answered 501 already.
            return AuthResult(success=False, handled=True)
        login, _, digest = answer.partition(b" ")
        expected = hmac.new(secret.encode(), challenge, hashlib.md5).hexdigest().encode()
        if login.decode("utf-8", "replace") != user or not hmac.compare_digest(digest, expected):
            # handled=False makes aiosmtpd answer 535 itself.
            return AuthResult(success=False, handled=False)
        server.session.tocsin_mechanism = "CRAM-MD5"
        server.session.tocsin_login = user
        return AuthResult(success=True, auth_data=login)

    def log(self, record):
        with open(self.args.record, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def parse(content):
    """Headers (decoded) and the decoded content of every leaf part, so that the tests need
    no MIME parser."""
    message = email.message_from_string(content, policy=email.policy.default)
    headers = {name.lower(): str(value) for name, value in message.items()}
    parts = [
        {"content_type": part.get_content_type(), "content": part.get_content()}
        for part in message.walk()
        if not part.is_multipart()
    ]
    return {"content_type": message.get_content_type(), "headers": headers, "parts": parts}


def make_authenticator(expected):
    user, _, password = expected.partition(":")

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        if not ok:
            # handled=False makes aiosmtpd answer 535 itself.
            return AuthResult(success=False, handled=False)
        session.tocsin_mechanism = mechanism
        return AuthResult(success=True, auth_data=auth_data)

    return authenticator


async def main():
    args = parse_args()
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    handler = Handler(args)
    exclude = list(args.exclude_mechanism)
    if args.cram_md5 is None:
        exclude.append("CRAM-MD5")

    def factory():
        return SMTP(
            handler,
            hostname="smtp.tocsin.test",
            tls_context=context if args.starttls else None,
            require_starttls=args.require_starttls,
            auth_required=args.auth is not None or args.cram_md5 is not None,
            # Implicit TLS is TLS too, but aiosmtpd only counts STARTTLS.
            auth_require_tls=not args.implicit_tls,
            auth_exclude_mechanism=exclude,
            authenticator=make_authenticator(args.auth) if args.auth else None,
            timeout=30,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, "127.0.0.1", 0, ssl=context if args.implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    # The test closes our stdin (or dies) when done: stop then, so no server outlives it.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
