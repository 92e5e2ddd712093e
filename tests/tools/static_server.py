#!/usr/bin/env python3
"""A plain static HTTP server for tests (python's http.server, nothing rewritten): serves
DIR on 127.0.0.1, prints the port. Stops on SIGTERM.

Usage: static_server.py DIR [--port-file FILE]
"""
import http.server
import os
import signal
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


def main():
    root = sys.argv[1]
    port_file = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--port-file" else None
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
