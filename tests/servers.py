"""Real servers for the tests: open-asr-server on loopback, a silent one, hostile ones."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

API_KEY = "test-key-4f1d0c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def asr_server(log_dir: Path, name: str = "asr", port: int | None = None,
               **limits: str) -> Iterator[str]:
    """open-asr-server==0.3.0 serving a local CTranslate2 model; yields its /v1 URL."""
    port = port or free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", OPEN_ASR_SERVER_API_KEY=API_KEY,
               **{f"OPEN_ASR_SERVER_{k.upper()}": v for k, v in limits.items()})
    log = (log_dir / f"{name}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "open_asr_server.app:create_app",
                             "--factory", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"open-asr-server exited: {(log_dir / f'{name}.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("open-asr-server did not start within 60 s")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and reads, but never answers: a hung provider."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


class RawServer:
    """A loopback HTTP server on bare sockets, for providers no real server imitates.

    Each connection's request is read whole (headers, then Content-Length bytes);
    `reply(server, peer, headers)` answers it. `sent` holds, per connection, the
    bytes the peer took before it hung up or the reply ended.
    """

    def __init__(self, reply: Callable[["RawServer", "Peer", dict], None],
                 port: int = 0) -> None:
        self.reply = reply
        self.sent: list[int] = []
        self.stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen()
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "RawServer":
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in list(self._threads):
            thread.join(10)
        self._listener.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            headers = _read_request(conn)
            if headers is None:
                return
            self.sent.append(0)
            self.reply(self, Peer(conn, self.sent, len(self.sent) - 1), headers)


class Peer:
    """One connection of a RawServer, counting what it sends."""

    def __init__(self, conn: socket.socket, sent: list[int], index: int) -> None:
        self.conn, self._sent, self._index = conn, sent, index

    @property
    def sent(self) -> int:
        return self._sent[self._index]

    def send(self, data: bytes) -> bool:
        """Send and count; False once the peer has gone."""
        try:
            self.conn.sendall(data)
        except OSError:
            return False
        self._sent[self._index] += len(data)
        return True


def _read_request(conn: socket.socket) -> dict | None:
    conn.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    remaining = int(headers.get("content-length", 0)) - len(body)
    while remaining > 0:
        chunk = conn.recv(min(remaining, 65536))
        if not chunk:
            return None
        remaining -= len(chunk)
    return headers


def trickle(response: bytes, every: float, from_byte: int = 0):
    """Sends `response` at once up to `from_byte`, then one byte per `every` seconds."""
    def reply(server: RawServer, peer: Peer, headers: dict) -> None:
        if not peer.send(response[:from_byte]):
            return
        for i in range(from_byte, len(response)):
            if server.stop.wait(every) or not peer.send(response[i:i + 1]):
                return
    return reply


def endless(status: str, limit: int):
    """Answers `status` with a body that goes on until the peer hangs up (or `limit`)."""
    def reply(server: RawServer, peer: Peer, headers: dict) -> None:
        head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                "Connection: close\r\n\r\n").encode()
        chunk = b'{"error": {"message": "' + b"x" * 65500
        if not peer.send(head):
            return
        while peer.sent < limit and not server.stop.is_set():
            if not peer.send(chunk):
                return
    return reply


def http_response(status: str, body: bytes, close_delimited: bool = False) -> bytes:
    length = "" if close_delimited else f"Content-Length: {len(body)}\r\n"
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{length}"
            "Connection: close\r\n\r\n").encode() + body
