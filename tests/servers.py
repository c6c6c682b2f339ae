"""Real servers for the tests: open-asr-server on loopback, and a silent one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
