"""An SMTP server for GeoWatch email tests: aiosmtpd on 127.0.0.1 with STARTTLS and AUTH required.

Mail is delivered into a Maildir (aiosmtpd's Mailbox handler, which adds X-MailFrom and X-RcptTo headers with
the envelope). Recipients in the domain given by --reject-domain are refused at RCPT with 550, so tests can
exercise an address the server rejects. Runs until SIGTERM/SIGINT; writes nothing but the Maildir.
"""
import argparse
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler(Mailbox):
    def __init__(self, maildir, reject_domain):
        super().__init__(maildir)
        self.reject_domain = reject_domain.lower()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().endswith("@" + self.reject_domain):
            return "550 5.1.1 <%s>: Recipient address rejected: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--reject-domain", default="rejected.invalid")
    a = p.parse_args()
    with open(a.password_file, encoding="utf-8") as f:
        password = f.read().strip()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == a.user and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False)

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(a.cert, a.key)
    controller = Controller(
        Handler(a.maildir, a.reject_domain),
        hostname="127.0.0.1",
        port=a.port,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
        ready_timeout=30,
    )
    controller.start()
    print("smtp ready on 127.0.0.1:%d" % a.port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
