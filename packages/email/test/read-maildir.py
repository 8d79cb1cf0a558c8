"""Prints the mails in a Maildir as JSON, parsed with Python's email package (independent of nodemailer).

Usage: python3 read-maildir.py MAILDIR
Each mail: file, from, to, rcpt_to (the envelope, from aiosmtpd's X-RcptTo), subject (decoded), text, html,
content_type. Bodies are decoded (quoted-printable/base64, charset).
"""
import json
import os
import sys
from email import policy
from email.parser import BytesParser

root = sys.argv[1]
out = []
for sub in ("new", "cur"):
    d = os.path.join(root, sub)
    if not os.path.isdir(d):
        continue
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            msg = BytesParser(policy=policy.default).parse(f)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        out.append({
            "file": name,
            "mtime": os.path.getmtime(os.path.join(d, name)),
            "from": str(msg["From"] or ""),
            "to": str(msg["To"] or ""),
            "rcpt_to": str(msg["X-RcptTo"] or ""),
            "subject": str(msg["Subject"] or ""),
            "message_id": str(msg["Message-ID"] or ""),
            "content_type": msg.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
        })
json.dump(out, sys.stdout, ensure_ascii=False)
