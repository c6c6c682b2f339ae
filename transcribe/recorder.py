"""Recording a voice note from the microphone (sounddevice / PortAudio).

sounddevice is imported only here and only when recording, so everything else
works on a machine without PortAudio. Capture runs in PortAudio's callback,
which only copies each block into a bounded queue; the calling thread takes
blocks off the queue and streams them through a resampler (libswresample,
properly filtered, via PyAV) into an Ogg/Opus encoder writing to disk. Memory
stays flat however long the recording, and Ctrl-C closes the file cleanly, so
what was recorded so far is kept.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from .audio import OpusEncoder
from .errors import InputError, MicrophoneError

log = logging.getLogger(__name__)

BLOCK_S = 0.1
QUEUE_BLOCKS = 600  # 60 s of audio may wait for the encoder
# When the queue is full the callback waits this long for room before it drops
# a block: never with a live microphone and a working encoder, but a capture
# device faster than real time (a file) is then paced by the encoder.
PUT_TIMEOUT_S = 2.0
SILENCE_DBFS = -45.0

INSTALL_HINT = ("install PortAudio: `sudo apt install libportaudio2` (Debian, Ubuntu), "
                "`sudo dnf install portaudio` (Fedora), `brew install portaudio` (macOS)")

LevelCallback = Callable[[float, float], None]  # elapsed seconds, level in dBFS


@dataclass(frozen=True)
class Recording:
    path: Path
    duration: float
    dropped_blocks: int = 0
    queue_high: int = 0  # the most blocks that waited in the capture queue at once


def load_sounddevice():
    """Import sounddevice, turning a missing PortAudio into a clear error."""
    try:
        import sounddevice
    except OSError as e:
        raise MicrophoneError(f"PortAudio is not available ({e}); {INSTALL_HINT}") from None
    return sounddevice


def input_devices() -> list[dict]:
    sd = load_sounddevice()
    try:
        devices = sd.query_devices()
        default = sd.default.device[0]
    except sd.PortAudioError as e:
        raise MicrophoneError(f"cannot list audio devices: {e}") from None
    return [{"index": d["index"], "name": d["name"],
             "channels": d["max_input_channels"],
             "default_samplerate": d["default_samplerate"], "default": d["index"] == default}
            for d in devices if d["max_input_channels"] > 0]


def default_recording_path(recordings_dir: Path) -> Path:
    return recordings_dir / f"recording-{datetime.now():%Y%m%d-%H%M%S}.ogg"


def dbfs(block: np.ndarray) -> float:
    """RMS level of int16 samples in dB relative to full scale."""
    if block.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(block.astype(np.float64) / 32768.0))))
    return max(20.0 * np.log10(rms), -120.0) if rms > 0 else -120.0


def record(output: Path, *, device: int | str | None = None, samplerate: int | None = None,
           max_seconds: float | None = None, stop_after_silence: float | None = None,
           silence_dbfs: float = SILENCE_DBFS, stop: threading.Event | None = None,
           on_level: LevelCallback | None = None,
           on_start: Callable[[str, int], None] | None = None, live=None) -> Recording:
    """Record until `stop` is set, `max_seconds` pass, silence lasts, or Ctrl-C.

    `live` (a live.LiveText) is fed every block as it is written, for the text so
    far; it decodes in a thread of its own and never holds the capture up."""
    sd = load_sounddevice()
    device = _pick_device(device)
    try:
        info = sd.query_devices(device, kind="input")
    except (sd.PortAudioError, ValueError) as e:
        raise MicrophoneError(f"no input device{'' if device is None else f' {device!r}'}: "
                              f"{e}; `transcribe devices` lists the microphones") from None
    rate = int(samplerate or info["default_samplerate"])
    blocks: queue.Queue[np.ndarray] = queue.Queue(maxsize=QUEUE_BLOCKS)
    dropped = high = 0

    closing = threading.Event()

    def callback(indata, frames, time_info, status) -> None:
        nonlocal dropped, high
        block = indata[:, 0].copy()
        deadline = time.monotonic() + PUT_TIMEOUT_S
        while not closing.is_set():
            try:
                blocks.put(block, timeout=0.05)
                high = max(high, blocks.qsize())
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    dropped += 1
                    return

    stop = stop or threading.Event()
    output = Path(output)
    try:
        stream = sd.InputStream(device=device, channels=1, samplerate=rate, dtype="int16",
                                blocksize=int(rate * BLOCK_S), callback=callback)
    except sd.PortAudioError as e:
        raise MicrophoneError(_explain(e, info["name"])) from None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        writer = OpusWriter(output, rate)
    except OSError as e:
        stream.close()
        raise InputError(output, f"cannot write the recording here ({e.strerror or e})") \
            from None
    frames = 0
    silent_since: float | None = None
    heard = False
    finished = False  # stopped by time or silence: later blocks are not part of the note
    try:
        stream.start()
        if live is not None:
            live.start(rate)
        if on_start is not None:
            on_start(info["name"], rate)
        while not stop.is_set():
            try:
                block = blocks.get(timeout=0.5)
            except queue.Empty:
                if not stream.active:
                    break
                continue
            writer.write(block)
            if live is not None:
                live.feed(block)
            frames += len(block)
            elapsed = frames / rate
            level = dbfs(block)
            if on_level is not None:
                on_level(elapsed, level)
            if max_seconds is not None and elapsed >= max_seconds:
                finished = True
                break
            if level > silence_dbfs:
                heard, silent_since = True, None
            elif silent_since is None:
                silent_since = elapsed
            if (stop_after_silence and heard and silent_since is not None
                    and elapsed - silent_since >= stop_after_silence):
                log.info("stopped after %.1f s of silence", stop_after_silence)
                finished = True
                break
    finally:
        # Before the stream stops, so the callback stops waiting for room; and here,
        # not in an inner block, so a Ctrl-C while the stream starts stops it too.
        closing.set()
        stream.stop(ignore_errors=True)
        stream.close(ignore_errors=True)
        # Enter and Ctrl-C land here too: blocks captured before the stop but still
        # queued are encoded, and the file is closed properly.
        while not finished:
            try:
                writer.write(blocks.get_nowait())
            except queue.Empty:
                break
        writer.close()
        if live is not None:
            live.close()
    if dropped:
        log.warning("dropped %d blocks: the encoder could not keep up", dropped)
    return Recording(output, writer.duration, dropped, high)


class OpusWriter(OpusEncoder):
    """An `OpusEncoder` writing to a hidden temporary file, put in place on close (by
    `writers.write_atomic`, as every output is), so the recordings folder never shows
    half a file and a --save onto a device or a symlink never replaces it."""

    def __init__(self, path: Path, input_rate: int) -> None:
        from .writers import output_target

        self.path = path
        target, in_place = output_target(path)
        if in_place:  # /dev/null, a FIFO: no temporary file beside it
            fd, tmp = tempfile.mkstemp(prefix="transcribe-recording-", suffix=".part")
            os.close(fd)
            self._tmp = Path(tmp)
        else:
            self._tmp = target.with_name(f".{target.name}.part")
            self._tmp.open("wb").close()  # PyAV opens lazily: fail here, before recording
        super().__init__(str(self._tmp), input_rate)

    @property
    def duration(self) -> float:
        return self.samples_in / self.input_rate

    def close(self) -> None:
        from .writers import write_atomic

        super().close()
        try:
            write_atomic(self.path, self._tmp.read_bytes())
        finally:
            self._tmp.unlink(missing_ok=True)


def _pick_device(device: int | str | None) -> int | str | None:
    """A device given as "3" on the command line means index 3, not a name."""
    if isinstance(device, str) and device.isdigit():
        return int(device)
    return device


def _explain(error: Exception, name: str) -> str:
    text = str(error)
    lowered = text.lower()
    if "busy" in lowered or "unavailable" in lowered:
        return f"the microphone {name!r} is busy (another program is using it): {text}"
    if "permission" in lowered or "denied" in lowered:
        return (f"no permission to use the microphone {name!r}: {text}; add yourself to the "
                "'audio' group or allow microphone access")
    return f"cannot open the microphone {name!r}: {text}"
