#!/usr/bin/env python3
"""A plain static HTTP server for tests (python's http.server, nothing rewritten): serves
DIR on 127.0.0.1, prints the port. Stops on SIGTERM.

With --etag, every file is answered with a strong ETag (the SHA-256 of its bytes) and a
request whose If-None-Match names it gets 304 (as nginx does); each 304 is logged to
stderr as "304 <path>" so a test can see conditional requests were made.

Usage: static_server.py DIR [--port-file FILE] [--etag]
"""
import hashlib
import http.server
import os
import signal
import sys

ETAG = False


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        if not ETAG:
            return super().do_GET()
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            return super().do_GET()
        with open(path, "rb") as f:
            body = f.read()
        etag = '"' + hashlib.sha256(body).hexdigest() + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            print("304 " + self.path, file=sys.stderr, flush=True)
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    global ETAG
    args = sys.argv[1:]
    ETAG = "--etag" in args
    args = [a for a in args if a != "--etag"]
    root = args[0]
    port_file = args[2] if len(args) > 2 and args[1] == "--port-file" else None
    os.chdir(root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = server.server_address[1]
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(port_file + ".tmp", port_file)
    print(port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
