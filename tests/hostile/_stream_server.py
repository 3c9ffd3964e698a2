"""A flooding SMTP server in its own process (so tracemalloc in the test sees only the client).

``python tests/hostile/_stream_server.py MODE`` prints its port, serves one client (greeting,
EHLO, then floods the reply to the next command) and prints a JSON summary: bytes sent, the
total it meant to send, and whether it finished before the client hung up. The flood is one
preallocated block sent over and over.
"""

from __future__ import annotations

import json
import socket
import sys
import time

MB = 1 << 20
LINE = b"250-continuation-line\r\n"  # 24 bytes: a million of them is 24 MB
BLOCK_LINES = 2731  # about 64 KiB


def readline(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def main(mode: str) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    print(server.getsockname()[1], flush=True)
    conn, _ = server.accept()
    conn.sendall(b"220 stream.test ready\r\n")
    readline(conn)  # EHLO
    conn.sendall(b"250 stream.test\r\n")
    readline(conn)  # the command whose reply is the flood
    if mode == "endless-line":
        head, block, total = b"250 ", memoryview(b"x" * 65536), 100 * MB
    elif mode == "continuations":
        head, block, total = b"", memoryview(LINE * BLOCK_LINES), len(LINE) * 1_000_000
    else:
        raise SystemExit(f"unknown mode {mode}")
    sent = 0
    started = time.monotonic()
    completed = False
    try:
        conn.sendall(head)
        while sent < total:
            conn.sendall(block)
            sent += len(block)
        completed = True
    except OSError:
        pass
    elapsed = time.monotonic() - started
    conn.close()
    server.close()
    print(json.dumps({"sent": sent, "total": total, "completed": completed, "elapsed": elapsed}))


if __name__ == "__main__":
    main(sys.argv[1])
