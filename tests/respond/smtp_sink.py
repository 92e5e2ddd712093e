#!/usr/bin/env python3
"""A real SMTP server for the tests (Debian's python3-aiosmtpd): accepts every message on
127.0.0.1:PORT and writes it to DIR/<n>.eml. With --max-messages K it stops listening after
K messages (an outage midway). Prints "ready" when listening. Stops on SIGTERM.

Usage: smtp_sink.py DIR PORT [--max-messages K]
"""
import asyncio
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, limit, stop):
        self.directory, self.limit, self.stop = directory, limit, stop
        self.count = len([n for n in os.listdir(directory) if n.endswith(".eml")])
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        if self.limit is not None and self.accepted >= self.limit:
            return "421 service shutting down"
        self.count += 1
        self.accepted += 1
        path = os.path.join(self.directory, f"{self.count:05d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        if self.limit is not None and self.accepted >= self.limit:
            self.stop.set()
        return "250 OK"


def main():
    directory, port = sys.argv[1], int(sys.argv[2])
    limit = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--max-messages" else None
    os.makedirs(directory, exist_ok=True)
    stop = threading.Event()
    controller = Controller(Sink(directory, limit, stop), hostname="127.0.0.1", port=port)
    controller.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
