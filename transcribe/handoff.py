"""Hand a note from the CLI to a running `transcribe watch`, whose model is loaded.

Most of a cold `transcribe note.ogg` is starting up: importing faster-whisper
and loading the model. A watcher has done both already, so it listens on a
Unix socket, `<data>/engine.sock` (mode 0600, and only a peer of the same user
is answered). The CLI decodes the note itself, sends the samples and its engine
settings, and gets the transcript back, with progress on the way. Nothing but
the local engine is served: the cloud policy stays with the CLI.

Anything unexpected leaves the CLI to transcribe the note itself, as it does
with no watcher: no socket, a stale socket, a service that serves another
model, an answer that is not a transcript, or a service that hangs up.

The protocol is JSON lines. The client sends one request line followed by the
samples as little-endian float32; the service answers `{"accepted": true}` as soon
as it has them, then `{"progress": [done, total]}` lines, at least one a second
with the CPU time its process has used (`"cpu"`, seconds), then `{"transcript": {...}}` or
`{"refused": "why"}`. A service on a long note (a watched one, or another CLI's)
refuses with "busy" at once rather than queue a short note behind it for
minutes. A request that is too large, too slow or malformed is refused
(`EngineServer`), in one line of the watcher's log.

The CLI never waits long on a service that does not answer (a stopped process,
a suspended one, a stuck disk): no acceptance within ACCEPT_TIMEOUT_S, no line
for SILENCE_S, or no progress for PROGRESS_STALL_S, and it transcribes the note
itself, saying why in one line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Callable

from .audio import SAMPLE_RATE, Audio
from .errors import TranscribeError, one_line
from .settings import Settings
from .transcript import Transcript, transcript_from_dict

log = logging.getLogger(__name__)

SOCKET_NAME = "engine.sock"
PROTOCOL = 2
# Settings that change what the engine does; the request carries them.
ENGINE_KEYS = ("model", "language", "languages", "task", "beam_size", "initial_prompt",
               "hotwords", "word_timestamps", "split", "device", "compute_type", "cpu_threads")
CONNECT_TIMEOUT_S = 0.5
# A request line is a path and a dozen settings, well under 1 kB; one that is not a
# line by 64 kB is refused (a 300 MB line without a newline once grew the watcher by
# 300 MB for good). The line must arrive within 10 s, the audio within 30 s more plus
# a second per 8 MB (the CLI sends it in one go; a Unix socket moves GB/s). A peer
# sending a byte every 20 s once held every other one up for 85 s.
MAX_REQUEST_LINE = 64 * 2**10
REQUEST_LINE_DEADLINE_S = 10.0
SAMPLES_DEADLINE_S = 30.0
SAMPLES_BYTES_PER_S = 8 * 2**20
# Notes longer than 4 h (0.9 GB of samples) are not handed over; the CLI keeps them.
MAX_SAMPLES = SAMPLE_RATE * 4 * 3600
# Peers served at once; more are refused at once and transcribe themselves.
MAX_PEERS = 8
SEND_TIMEOUT_S = 30.0
# The CLI's patience. A service takes a request in milliseconds (a 2-minute note is
# 7.7 MB through a Unix socket); 5 s leaves room for a machine under a load of 15.
# A cold CLI costs 3-5 s more than a hand-off on 2 cores, waiting 600 s cost minutes
# (a SIGSTOPped watcher held every `transcribe yes.wav` for ten minutes).
ACCEPT_TIMEOUT_S = 5.0
NOT_TAKEN = f"the running service did not take the note within {ACCEPT_TIMEOUT_S:.0f} s"
# The service says where it is at least every HEARTBEAT_S, even between progress
# points; SILENCE_S without a line, and it is taken for stopped.
HEARTBEAT_S = 1.0
SILENCE_S = 10.0
# Alive but stuck: for this long the progress does not move and the service does
# not use CPU_STEP_S of CPU either. Progress comes piece by piece, and under a load
# of 15-20 on 2 cores an 8 s note in a new watcher (its model loading, then its
# first decode) went over 60 s without a progress point; CPU time moves all along.
PROGRESS_STALL_S = 30.0
CPU_STEP_S = 1.0
# A service transcribing a note longer than this answers "busy": its decoder is
# held a block (2 minutes of audio) at a time, 30-60 s each under load.
BUSY_NOTE_S = 60.0


def socket_path(settings: Settings) -> Path:
    return settings.paths.data_dir / SOCKET_NAME


class Declined(Exception):
    """The running service could not be asked, or would not answer; the message says why.

    `notice`: whether the user is told (a note that is simply not handed over,
    being too long, is not news)."""

    def __init__(self, message: str, notice: bool = True) -> None:
        super().__init__(message)
        self.notice = notice


class HandoffEngine:
    """The engine of a running `transcribe watch`, asked over its socket.

    Takes what every engine takes (decoded audio) and returns a `Transcript`, or
    raises `Declined`; the pipeline then transcribes the note itself, and does so
    for the rest of the run. Only a note held whole (`audio.Audio`) is handed
    over: a long note read as a stream stays here, where it is read block by block."""

    name = "handoff"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def available(self) -> bool:
        """Whether a service seems to listen (its socket is there)."""
        return socket_path(self.settings).exists()

    def transcribe(self, audio, file: str,
                   on_progress: Callable[[float, float, list], None] | None = None) -> Transcript:
        if not isinstance(audio, Audio):
            raise Declined("a long note is read block by block here, not handed over",
                           notice=False)
        return transcribe_via_service(self.settings, audio.samples, file, on_progress)


def transcribe_via_service(settings: Settings, samples, file: str,
                           on_progress: Callable[[float, float, list], None] | None = None
                           ) -> Transcript:
    """The transcript from a running service; `Declined` when there is none to ask,
    or it refuses, or it does not answer in time (`_Answer`)."""
    path = socket_path(settings)
    if not path.exists():
        raise Declined("no service is running", notice=False)
    if len(samples) > MAX_SAMPLES:
        raise Declined("too long to hand to the running service", notice=False)
    request = {"protocol": PROTOCOL, "file": file, "samples": len(samples),
               "settings": {key: getattr(settings, key) for key in ENGINE_KEYS}}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.connect(str(path))
            sock.settimeout(ACCEPT_TIMEOUT_S)  # the whole of the sending, and the acceptance
            started = time.monotonic()
            try:
                sock.sendall(json.dumps(request).encode() + b"\n")
                sock.sendall(samples.astype("<f4", copy=False).tobytes())
            except TimeoutError:  # a stopped service reads nothing: its buffer fills
                raise Declined(NOT_TAKEN) from None
            transcript = _Answer(sock, started).read(on_progress)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise Declined(f"the running service did not answer ({e.__class__.__name__})") from None
    log.info("%s: transcribed by the running service", file)
    return transcript


class _Answer:
    """Reads a service's answer, and gives up on it when it falls silent or stalls.

    Each wait is bounded: the acceptance by what is left of ACCEPT_TIMEOUT_S
    (sending the note counts), every later line by SILENCE_S, and the progress
    must move within PROGRESS_STALL_S."""

    def __init__(self, sock: socket.socket, started: float) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.started = started

    def read(self, on_progress) -> Transcript:
        accepted = self._line(ACCEPT_TIMEOUT_S - (time.monotonic() - self.started),
                              NOT_TAKEN)
        self._refused(accepted)
        if not accepted.get("accepted"):
            raise ValueError("no acceptance")
        done, cpu, moved = -1.0, 0.0, time.monotonic()
        while True:
            answer = self._line(SILENCE_S, f"the running service fell silent for "
                                           f"{SILENCE_S:.0f} s")
            self._refused(answer)
            if "transcript" in answer:
                return transcript_from_dict(answer["transcript"])
            if "progress" in answer:
                now = time.monotonic()
                if answer.get("cpu", 0.0) >= cpu + CPU_STEP_S:  # working, if slowly
                    cpu, moved = answer["cpu"], now
                if answer["progress"][0] > done:
                    done, moved = answer["progress"][0], now
                    if on_progress is not None:
                        on_progress(*answer["progress"], [])
                elif now - moved > PROGRESS_STALL_S:
                    raise Declined(f"the running service made no progress for "
                                  f"{PROGRESS_STALL_S:.0f} s")

    def _line(self, timeout: float, silent: str) -> dict:
        if timeout <= 0:
            raise Declined(silent)
        self.sock.settimeout(timeout)
        try:
            line = self.reader.readline()
        except TimeoutError:
            raise Declined(silent) from None
        if not line:
            raise Declined("the running service hung up")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ValueError("not an object")
        return answer

    @staticmethod
    def _refused(answer: dict) -> None:
        if "refused" in answer:
            why = answer["refused"]
            raise Declined("the running service is busy with a long note" if why == "busy"
                          else f"the running service declined ({one_line(why)})")


class Refused(Exception):
    """A request the service will not serve; the message says why, in one line."""


class EngineServer:
    """The watcher's side: serves its loaded model to the CLI.

    Each peer has a thread of its own, so a slow or broken one holds up nobody
    (decoding itself is serialised by the engine). A request must arrive whole
    within a deadline and its line within a size cap; anything else is refused
    in one log line, and the CLI, told or hung up on, transcribes the note itself.
    """

    def __init__(self, settings: Settings) -> None:
        from .engine import LocalEngine

        self.settings = settings
        self.engine = LocalEngine(settings)
        self.path = socket_path(settings)
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._peers = threading.BoundedSemaphore(MAX_PEERS)

    def start(self) -> bool:
        """Listen, unless another live service owns the socket. Returns whether it listens."""
        if self.path.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(self.path))
                    log.info("another service answers on %s; not serving the CLI", self.path)
                    return False
                except OSError:
                    self.path.unlink(missing_ok=True)  # left by a service that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177)
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old_umask)
            sock.listen(MAX_PEERS)
        except OSError as e:
            sock.close()
            log.info("cannot serve the CLI on %s (%s)", self.path, e.strerror or e)
            return False
        self._sock, self._inode = sock, self.path.stat().st_ino
        self.engine.preload()  # resident from the start, not from the first note
        threading.Thread(target=self._accept, name="engine-server", daemon=True).start()
        log.info("serving the loaded model to the CLI on %s", self.path)
        return True

    def close(self) -> None:
        if self._sock is None:
            return
        self._sock.close()
        try:
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()
        except OSError:
            pass
        self._sock = None

    def _accept(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            if not self._peers.acquire(blocking=False):
                log.warning("a CLI request was refused: %d peers already connected", MAX_PEERS)
                _send_quietly(conn, {"refused": "busy"})
                conn.close()
                continue
            threading.Thread(target=self._peer, args=(conn,), name="engine-peer",
                             daemon=True).start()

    def _peer(self, conn: socket.socket) -> None:
        """Serve one connection; whatever happens is one log line, never a traceback."""
        try:
            self._serve(conn)
        except Refused as e:
            log.warning("a CLI request was refused: %s", e)
            _send_quietly(conn, {"refused": str(e)})
        except TranscribeError as e:
            log.warning("a CLI request failed: %s", e)
            _send_quietly(conn, {"refused": str(e)})
        except OSError as e:
            log.info("a CLI request ended early (%s)", e.strerror or e.__class__.__name__)
        except Exception as e:  # noqa: BLE001 - the service goes on; the CLI falls back
            log.error("a CLI request failed: %s: %s", e.__class__.__name__, one_line(e))
        finally:
            conn.close()
            self._peers.release()

    def _serve(self, conn: socket.socket) -> None:
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
        if uid != os.getuid():
            return
        reader = _Reader(conn)
        request = _parse_request(reader.line())
        samples = reader.samples(request["samples"])
        from .engine import longest_note_in_hand

        engine = self._engine_for(request["settings"])
        if longest_note_in_hand() > BUSY_NOTE_S:
            raise Refused("busy")
        file = str(request.get("file"))
        log.info("transcribing %s for pid %d", file, pid)
        with _Reporter(conn, len(samples) / SAMPLE_RATE) as reporter:
            transcript = engine.transcribe(Audio(samples, SAMPLE_RATE, "pcm"), file,
                                           lambda done, total, _: reporter.progress(done, total))
            reporter.send({"transcript": transcript.to_dict(words=True)})

    def _engine_for(self, values: dict):
        """An engine with the request's settings, if this service's model is the one asked for."""
        from .engine import LocalEngine

        if values.get("cpu_threads") == 0:  # the CLI's default: whatever this service uses
            values = {**values, "cpu_threads": self.settings.cpu_threads}
        try:
            settings = dataclasses.replace(self.settings, **values)
            settings.validate()
            engine = LocalEngine(settings)
            same = _model_key(engine) == _model_key(self.engine)
        except (TypeError, ValueError, TranscribeError) as e:
            raise Refused(f"bad settings ({one_line(e)})") from None
        if not same:
            raise Refused(f"it serves model {self.settings.model} "
                          f"({self.settings.compute_type})")
        return engine


class _Reporter:
    """The service's side of an answer: accepted at once, then where it is at, at
    every progress point and at least every HEARTBEAT_S between them, from a thread
    of its own (the model may be loading, or busy with another short note)."""

    def __init__(self, conn: socket.socket, total: float) -> None:
        self.conn = conn
        self.last = [0.0, total]
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.failed: OSError | None = None

    def __enter__(self) -> _Reporter:
        self.conn.settimeout(SEND_TIMEOUT_S)
        self.send({"accepted": True})
        self.send({"progress": self.last})
        threading.Thread(target=self._beat, name="engine-peer-beat", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()

    def progress(self, done: float, total: float) -> None:
        """A progress point; raises OSError once the peer is gone, which ends the decoding."""
        if self.failed is not None:
            raise self.failed
        self.last = [done, total]
        self.send({"progress": self.last})

    def send(self, message: dict) -> None:
        with self.lock:
            self.conn.sendall(json.dumps(message).encode() + b"\n")

    def _beat(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            try:
                self.send({"progress": self.last, "cpu": round(time.process_time(), 2)})
            except OSError as e:
                self.failed = e
                return


class _Reader:
    """Reads one request off a socket: its line under a size cap, all of it by a deadline.

    A socket timeout bounds each wait, not the whole: a peer sending a byte every
    20 s would never trip one. Every wait here is cut to what is left of the deadline.
    """

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.deadline = time.monotonic() + REQUEST_LINE_DEADLINE_S
        self.buffer = bytearray()

    def line(self) -> bytes:
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > MAX_REQUEST_LINE:
                raise Refused(f"the request line is over {MAX_REQUEST_LINE // 1024} kB")
            self.buffer += self._recv(65536)
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        return line

    def samples(self, count: int):
        """`count` float32 samples; memory is taken as they arrive, not as announced."""
        import numpy as np

        samples = np.empty(count, dtype="<f4")
        view = memoryview(samples).cast("B")
        have = min(len(self.buffer), len(view))
        view[:have] = self.buffer[:have]
        self.deadline += SAMPLES_DEADLINE_S + len(view) / SAMPLES_BYTES_PER_S
        while have < len(view):
            got = self._recv_into(view[have:])
            if not got:
                raise Refused(f"the peer hung up after {have} of {len(view)} bytes of audio")
            have += got
        return samples.astype(np.float32, copy=False)

    def _recv(self, size: int) -> bytes:
        chunk = bytearray(size)
        got = self._recv_into(memoryview(chunk))
        if not got:
            raise Refused("the peer hung up before the request line ended")
        return bytes(chunk[:got])

    def _recv_into(self, view: memoryview) -> int:
        left = self.deadline - time.monotonic()
        if left > 0:
            self.conn.settimeout(left)
            try:
                return self.conn.recv_into(view, min(len(view), 2**20))
            except TimeoutError:
                pass
        raise Refused("the peer was too slow to send its request")


def _parse_request(line: bytes) -> dict:
    """The request line, checked: anything malformed is Refused, with what is wrong."""
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise Refused("the request line is not JSON") from None
    if not isinstance(request, dict):
        raise Refused("the request is not a JSON object")
    if request.get("protocol") != PROTOCOL:
        raise Refused(f"protocol {one_line(request.get('protocol'))} is not {PROTOCOL}")
    count = request.get("samples")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= MAX_SAMPLES:
        raise Refused(f"samples must be a count from 1 to {MAX_SAMPLES}")
    settings = request.get("settings")
    if not isinstance(settings, dict) or set(settings) != set(ENGINE_KEYS):
        raise Refused("settings must name exactly the engine's settings")
    if not all(v is None or isinstance(v, (str, int, float)) for k, v in settings.items()
               if k != "languages"):
        raise Refused("settings must be strings, numbers or null")
    languages = settings["languages"]
    if not isinstance(languages, list) or not all(isinstance(c, str) for c in languages):
        raise Refused("languages must be a list of language codes")
    settings["languages"] = tuple(languages)
    return request


def _send_quietly(conn: socket.socket, message: dict) -> None:
    """Tell the peer, if it still listens; a refusal is best effort."""
    try:
        conn.settimeout(1.0)
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def _model_key(engine) -> tuple:
    from .engine import pick_device

    settings = engine.settings
    return (engine.resolved.location, pick_device(settings.device, settings.compute_type),
            settings.cpu_threads)
