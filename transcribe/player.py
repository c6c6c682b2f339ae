"""Playing a note on the speakers (sounddevice / PortAudio), from any time in it.

sounddevice is imported only when a note is played (it needs libportaudio2, and
raises OSError without it), so everything else works on a machine with no sound.
The note is decoded the way it is for transcribing (`audio.decode`: 16 kHz mono),
kept as int16, and played at 16 kHz where the device takes that rate (ALSA's
`default`, PulseAudio and PipeWire resample it themselves), else at the device's
own rate, each block interpolated from the note's samples as it is played.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, decode
from .errors import MicrophoneError, TranscribeError

log = logging.getLogger(__name__)


class PlaybackError(TranscribeError):
    """A note cannot be played: no PortAudio, no output device, the device refused."""


class Player:
    """Plays `samples` (16 kHz mono, float or int16) on an output device; `play`, `pause`,
    `seek` may be called from any thread while it plays, and `position` says where it is
    (seconds on the note's clock)."""

    def __init__(self, samples: np.ndarray, *, device: int | str | None = None) -> None:
        self._sd = _sounddevice()
        self._samples = _int16(samples)
        self._lock = threading.Lock()
        self._next = 0  # the note's next sample to be played
        self._from = 0  # where it was last told to play from
        self._paused = False
        self._stream, self.rate = self._open(device)

    @classmethod
    def of_file(cls, path: str | Path, *, device: int | str | None = None) -> "Player":
        """A player of the audio file at `path` (decoded as for transcribing)."""
        return cls(decode(path, partial=True).samples, device=device)

    def _open(self, device: int | str | None):
        sd = self._sd
        try:
            info = sd.query_devices(device, kind="output")
        except (sd.PortAudioError, ValueError) as e:
            raise PlaybackError(f"no output device to play on ({e})") from None
        rate = SAMPLE_RATE
        try:
            sd.check_output_settings(device=device, channels=1, samplerate=rate, dtype="int16")
        except (sd.PortAudioError, ValueError):
            rate = int(info["default_samplerate"])
        try:
            stream = sd.OutputStream(device=device, channels=1, samplerate=rate, dtype="int16",
                                     callback=self._fill)
        except sd.PortAudioError as e:
            raise PlaybackError(f"cannot play on {info['name']!r}: {e}") from None
        log.info("playing on %r at %d Hz", info["name"], rate)
        return stream, rate

    @property
    def duration(self) -> float:
        return len(self._samples) / SAMPLE_RATE

    @property
    def position(self) -> float:
        """Where playback is, in seconds on the note's clock (what is being heard: the
        device's output latency behind what was handed to it)."""
        with self._lock:
            handed, since = self._next / SAMPLE_RATE, self._from / SAMPLE_RATE
        heard = handed - (self._stream.latency if self.playing else 0.0)
        return min(max(heard, since), self.duration)

    @property
    def playing(self) -> bool:
        """Whether the note is playing now (not paused, not played to its end)."""
        return self._stream.active and not self._paused

    @property
    def paused(self) -> bool:
        return self._paused

    def play(self, start: float | None = None) -> None:
        """Play from `start` (s), or on from where it is."""
        with self._lock:
            if start is not None:
                self._next = self._from = _sample_at(start, len(self._samples))
            self._paused = False
        if not self._stream.active:
            if self._next >= len(self._samples):
                return
            self._stream.stop()  # a stream that played to its end must stop to start again
            self._stream.start()

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def seek(self, seconds: float) -> None:
        """Go on playing (or stay paused) from `seconds`."""
        with self._lock:
            self._next = self._from = _sample_at(seconds, len(self._samples))

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()

    def _fill(self, outdata, frames: int, time_info, status) -> None:
        """PortAudio's callback: the next `frames` samples at the stream's rate."""
        with self._lock:
            if self._paused:
                outdata.fill(0)
                return
            block, self._next = _block(self._samples, self._next, frames,
                                       SAMPLE_RATE / self.rate)
        outdata[:len(block), 0] = block
        outdata[len(block):] = 0
        if len(block) < frames:
            raise self._sd.CallbackStop


def _block(samples: np.ndarray, start: int, frames: int, step: float) -> tuple[np.ndarray, int]:
    """`frames` output samples from the note's sample `start` on, `step` note samples
    apart (1 at 16 kHz; interpolated between them at another rate); and the note's sample
    after them."""
    if step == 1.0:
        block = samples[start:start + frames]
        return block, start + len(block)
    wanted = np.arange(frames) * step  # from `start`
    wanted = wanted[wanted <= len(samples) - 1 - start]
    if not len(wanted):
        return samples[:0], len(samples)
    near = samples[start:start + int(wanted[-1]) + 2].astype(np.float32)
    block = np.interp(wanted, np.arange(len(near)), near).astype(np.int16)
    return block, start + int(round(len(wanted) * step))


def _sample_at(seconds: float, length: int) -> int:
    return min(max(int(seconds * SAMPLE_RATE), 0), length)


def _int16(samples: np.ndarray) -> np.ndarray:
    """The note as int16: half the memory of float32 (an hour's note: 115 MB)."""
    if samples.dtype == np.int16:
        return samples
    return (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)


def _sounddevice():
    """sounddevice, or a PlaybackError that says how to install PortAudio."""
    from .recorder import load_sounddevice

    try:
        return load_sounddevice()
    except MicrophoneError as e:
        raise PlaybackError(str(e)) from None
