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
samples as little-endian float32; the service answers with any number of
`{"progress": [done, total]}` lines, then `{"transcript": {...}}` or
`{"refused": "why"}`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Callable

from .settings import Settings
from .transcript import Transcript, transcript_from_dict

log = logging.getLogger(__name__)

SOCKET_NAME = "engine.sock"
PROTOCOL = 1
# Settings that change what the engine does; the request carries them.
ENGINE_KEYS = ("model", "language", "task", "beam_size", "initial_prompt", "hotwords",
               "word_timestamps", "split", "device", "compute_type", "cpu_threads")
CONNECT_TIMEOUT_S = 0.5
# The service finishes the note it is on before it takes ours; a long note can
# take minutes, and progress lines arrive only between its pieces.
ANSWER_TIMEOUT_S = 600.0


def socket_path(settings: Settings) -> Path:
    return settings.paths.data_dir / SOCKET_NAME


def transcribe_via_service(settings: Settings, samples, file: str,
                           on_progress: Callable[[float, float], None] | None = None
                           ) -> Transcript | None:
    """The transcript from a running service, or None when there is none to ask."""
    path = socket_path(settings)
    if not path.exists():
        return None
    request = {"protocol": PROTOCOL, "file": file, "samples": len(samples),
               "settings": {key: getattr(settings, key) for key in ENGINE_KEYS}}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.connect(str(path))
            sock.settimeout(ANSWER_TIMEOUT_S)
            sock.sendall(json.dumps(request).encode() + b"\n")
            sock.sendall(samples.astype("<f4", copy=False).tobytes())
            for line in sock.makefile("rb"):
                answer = json.loads(line)
                if "progress" in answer and on_progress is not None:
                    on_progress(*answer["progress"])
                elif "transcript" in answer:
                    log.info("%s: transcribed by the running service", file)
                    return transcript_from_dict(answer["transcript"])
                elif "refused" in answer:
                    log.info("%s: the running service declined (%s); transcribing here",
                             file, answer["refused"])
                    return None
    except (OSError, ValueError, TypeError, KeyError) as e:
        log.info("%s: the running service did not answer (%s); transcribing here", file,
                 e.__class__.__name__)
        return None
    log.info("%s: the running service hung up; transcribing here", file)
    return None


class EngineServer:
    """The watcher's side: serves its loaded model to the CLI, one note at a time."""

    def __init__(self, settings: Settings) -> None:
        from .engine import LocalEngine

        self.settings = settings
        self.engine = LocalEngine(settings)
        self.path = socket_path(settings)
        self._sock: socket.socket | None = None
        self._inode: int | None = None

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
            sock.listen(4)
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
            with conn:
                try:
                    self._serve(conn)
                except (OSError, ValueError, KeyError) as e:
                    log.info("a CLI request ended early (%s)", e)
                except Exception:  # noqa: BLE001 - the service goes on; the CLI falls back
                    log.exception("a CLI request failed")

    def _serve(self, conn: socket.socket) -> None:
        import numpy as np

        from .audio import SAMPLE_RATE, Audio
        from .engine import LocalEngine

        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
        if uid != os.getuid():
            return
        conn.settimeout(30)
        reader = conn.makefile("rb")
        request = json.loads(reader.readline())

        def send(message: dict) -> None:
            conn.sendall(json.dumps(message).encode() + b"\n")

        if request.get("protocol") != PROTOCOL:
            return send({"refused": f"protocol {request.get('protocol')} is not {PROTOCOL}"})
        data = reader.read(4 * int(request["samples"]))
        if len(data) != 4 * int(request["samples"]):
            raise ValueError("short audio")
        settings = dataclasses.replace(self.settings, **{key: request["settings"][key]
                                                         for key in ENGINE_KEYS})
        settings.validate()
        engine = LocalEngine(settings)
        if _model_key(engine) != _model_key(self.engine):
            return send({"refused": f"it serves model {self.settings.model} "
                                    f"({self.settings.compute_type})"})
        audio = Audio(np.frombuffer(data, dtype="<f4").astype(np.float32), SAMPLE_RATE, "pcm")
        log.info("transcribing %s for pid %d", request.get("file"), pid)
        transcript = engine.transcribe(audio, str(request.get("file")),
                                       lambda done, total: send({"progress": [done, total]}))
        send({"transcript": transcript.to_dict(words=True)})


def _model_key(engine) -> tuple:
    from .engine import pick_device

    settings = engine.settings
    return (engine.resolved.location, pick_device(settings.device, settings.compute_type),
            settings.cpu_threads)
