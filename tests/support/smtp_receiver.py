"""A real SMTP server for the tests (aiosmtpd), writing each message it accepts as JSON.

Usage: python smtp_receiver.py PORT OUT_DIR

Each accepted message becomes OUT_DIR/NNNNNN.json (written to a temporary name, then renamed,
so a reader never sees half a file) with the envelope and the message as Python's own `email`
parser reads it: decoded subject, Message-ID, the plain-text part and every attachment. Prints
"ready" once it listens.
"""

import asyncio
import json
import os
import sys
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out):
        self.out = out
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        text = None
        attachments = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            filename = part.get_filename()
            if filename:
                attachments.append({
                    "filename": filename,
                    "content_type": part.get_content_type(),
                    "params": dict(part.get_params() or []),
                    "content": part.get_content() if part.get_content_maintype() == "text"
                    else part.get_payload(decode=True).decode("latin-1"),
                })
            elif part.get_content_type() == "text/plain" and text is None:
                text = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "text": text,
            "attachments": attachments,
        }
        self.count += 1
        path = os.path.join(self.out, "%06d.json" % self.count)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


async def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    controller = Controller(Handler(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    asyncio.run(main())
