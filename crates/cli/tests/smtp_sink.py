"""A real SMTP server on loopback for the mail tests (crates/cli/tests/mail.rs).

aiosmtpd accepts every message; each one is written to FOLDER as NNNN.json: the
envelope (mail_from, rcpt_tos), the headers, the decoded text body and the raw
message. The file `ready` appears once the server listens.

    python3 smtp_sink.py FOLDER PORT [--tls-cert CERT --tls-key KEY] [--auth USER:PASSWORD]

With a certificate the server offers STARTTLS and requires it; with --auth it
requires AUTH (PLAIN or LOGIN) with that user and password.
"""

import argparse
import email
import json
import os
import ssl
import threading
from email import policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": {name: str(value) for name, value in message.items()},
            # The text as the sender wrote it: SMTP's CRLF line ends made LF.
            "body": message.get_content().replace("\r\n", "\n"),
            "raw": raw.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
            "authenticated": session.authenticated,
        }
        with self.lock:
            self.count += 1
            name = "%04d.json" % self.count
        # Written whole, then renamed: a reader never sees half a file.
        tmp = os.path.join(self.folder, "." + name)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.folder, name))
        return "250 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("port", type=int)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--auth")
    args = parser.parse_args()

    options = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        options["tls_context"] = context
        options["require_starttls"] = True
    if args.auth:
        user, password = args.auth.split(":", 1)

        def check(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == user.encode() and auth_data.password == password.encode()
            # handled=False: aiosmtpd answers 535 itself.
            return AuthResult(success=ok, handled=False)

        options["authenticator"] = check
        options["auth_required"] = True
        # Over the STARTTLS connection only, unless there is none.
        options["auth_require_tls"] = bool(args.tls_cert)

    controller = Controller(
        Sink(args.folder), hostname="127.0.0.1", port=args.port, **options
    )
    controller.start()
    with open(os.path.join(args.folder, "ready"), "w") as f:
        f.write(str(args.port))
    # Until the test kills the process.
    threading.Event().wait()


if __name__ == "__main__":
    main()
