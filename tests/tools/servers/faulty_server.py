"""Stdio "MCP servers" that fail the handshake, for tedchat's fault tests.

python faulty_server.py exit [MARKER]   reads the initialize request, says why on stderr,
                                        exits 3 without answering
python faulty_server.py hang [MARKER]   reads stdin and never answers; ignores EOF and
                                        SIGTERM, so only a kill ends it
"""

from __future__ import annotations

import os
import signal
import sys
import time

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "exit":
        sys.stdin.readline()
        token = os.environ.get("FAULTY_TOKEN")
        why = f"token {token} was refused" if token else "the database file is missing"
        print(f"fatal: {why}", file=sys.stderr, flush=True)
        sys.exit(3)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while sys.stdin.readline():
        pass
    while True:
        time.sleep(60)
