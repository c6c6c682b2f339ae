"""The hand-off socket of a real `transcribe watch` against hostile and broken peers:
a request line that never ends, a peer that trickles, malformed requests. The watcher
must stay small, keep serving others, and log one line per refused request."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

from conftest import REFERENCES, SAMPLES, run_cli
from test_watch import _service_ready, space, watcher  # noqa: F401 - `space` is a fixture
from wer import wer

from transcribe.handoff import ENGINE_KEYS, PROTOCOL
from transcribe.settings import Settings

NOTE = SAMPLES / "PTT-20240312-WA0007.opus"
MB = 2**20


def connect(sock_path: Path, timeout: float = 120) -> socket.socket:
    """A raw peer. The timeout only guards against a hang; nothing here measures time."""
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    peer.settimeout(timeout)
    peer.connect(str(sock_path))
    return peer


def answer(peer: socket.socket) -> list[dict]:
    """Every line the service sends until it hangs up."""
    data = b""
    while chunk := peer.recv(65536):
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmRSS:"))) * 1024


def handed_off(data: Path) -> None:
    """A real CLI run is served by the watcher: the hand-off still works."""
    result = run_cli("-v", "--no-store", str(NOTE), env={"TRANSCRIBE_HOME": str(data)},
                     timeout=240)
    assert result.returncode == 0, result.stderr
    assert "transcribed by the running service" in result.stderr, result.stderr
    assert wer(REFERENCES[NOTE.name]["text"], result.stdout) <= 0.15


def test_a_request_line_that_never_ends_is_cut_off_at_a_cap(space):
    inbox, out, data = space
    with watcher(inbox, out, data) as proc:
        sock_path = _service_ready(data, proc)
        handed_off(data)  # the model is loaded: what follows is measured against that
        before = rss(proc.pid)
        peer = connect(sock_path)
        sent = 0
        chunk = b'{"protocol": 1, "file": "' + b"x" * (MB - 25)
        try:
            while sent < 256 * MB:  # 256 MB without a newline, unless cut off
                peer.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        try:
            refusal = answer(peer)
        except OSError:
            refusal = []  # the service hung up with our bytes unread: a reset
        peer.close()
        after = rss(proc.pid)
        handed_off(data)
    assert sent < 16 * MB, "the service stopped reading at the cap"
    assert refusal in ([], [{"refused": "the request line is over 64 kB"}])
    assert after - before < 32 * MB, (before, after)
    assert "a CLI request was refused: the request line is over 64 kB" in \
        (data.parent / "watch.log").read_text()


def test_a_slow_peer_holds_up_nobody_and_is_dropped(space):
    inbox, out, data = space
    with watcher(inbox, out, data) as proc:
        sock_path = _service_ready(data, proc)
        slow = connect(sock_path)
        slow.sendall(b'{"protocol": 1, ')
        stop = threading.Event()

        def trickle() -> None:  # a byte every 0.5 s, until the service hangs up on it
            try:
                while not stop.wait(0.5):
                    slow.sendall(b" ")
            except OSError:
                pass

        thread = threading.Thread(target=trickle)
        thread.start()
        try:
            # Another peer is answered while the slow one is still connected.
            other = connect(sock_path)
            other.sendall(b'{"protocol": 0}\n')
            assert answer(other) == [{"refused": f"protocol 0 is not {PROTOCOL}"}]
            other.close()
            slow.setblocking(False)
            try:
                assert slow.recv(1) != b"", "the slow peer is still being waited for"
            except BlockingIOError:
                pass
            slow.setblocking(True)
            handed_off(data)
            # The slow peer is told why and dropped, not waited for without end.
            assert answer(slow) == [{"refused": "the peer was too slow to send its request"}]
        finally:
            stop.set()
            thread.join()
            slow.close()
    log = (data.parent / "watch.log").read_text()
    assert log.count("a CLI request was refused: the peer was too slow") == 1, log


def request_line(data: Path, **changes) -> bytes:
    settings = Settings.load({"TRANSCRIBE_HOME": str(data)})
    request = {"protocol": PROTOCOL, "file": "x.ogg", "samples": 4,
               "settings": {key: getattr(settings, key) for key in ENGINE_KEYS}}
    for key, value in changes.items():
        if key in ENGINE_KEYS:
            request["settings"][key] = value
        else:
            request[key] = value
    return json.dumps(request).encode() + b"\n"


def test_malformed_requests_are_refused_in_one_log_line_each(space):
    inbox, out, data = space
    audio = b"\0" * 16
    bad = [
        b"not json\n",
        b"\xff\xfe\x00\x01\n",
        b"[1, 2]\n",
        b'{"protocol": 1}\n',
        request_line(data, samples="many") + audio,
        request_line(data, samples=-3) + audio,
        request_line(data, settings=None) + audio,
        request_line(data, settings={"model": "base"}) + audio,
        request_line(data, beam_size="five") + audio,
        request_line(data, beam_size=[5]) + audio,
        request_line(data, model="no-such-model") + audio,
        request_line(data, task="dance") + audio,
        request_line(data, samples=1000) + audio,  # hangs up after 16 of 4000 bytes
    ]
    with watcher(inbox, out, data) as proc:
        sock_path = _service_ready(data, proc)
        log_path = data.parent / "watch.log"
        start = len(log_path.read_text())
        answers = []
        for payload in bad:
            peer = connect(sock_path)
            peer.sendall(payload)
            peer.shutdown(socket.SHUT_WR)
            answers.append(answer(peer))
            peer.close()
        handed_off(data)
        assert proc.poll() is None
    log = log_path.read_text()[start:]
    assert "Traceback" not in log, log
    events = [line for line in log.splitlines() if "a CLI request" in line]
    assert len(events) == len(bad), log
    assert all(line.startswith("WARNING a CLI request was refused: ") for line in events), log
    for got, line in zip(answers, events):
        assert got == [{"refused": line.removeprefix("WARNING a CLI request was refused: ")}]
