"""Reading voice notes: any container and codec PyAV knows, to 16 kHz mono float32.

PyAV bundles FFmpeg's libraries, so no `ffmpeg` binary is needed. Every way a
file can be unusable is turned into an `InputError` that names the file and
says why in words; the file itself is only ever opened for reading.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import (EmptyFile, FileMissing, FileTooLarge, FileUnreadable, InputError, NotAudio,
                     TruncatedAudio)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# 16 kHz mono Opus at this rate is about 3 kB per second of speech.
OPUS_BITRATE = 24000
AUDIO_SUFFIXES = frozenset({
    ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".mp3", ".webm", ".weba", ".mka",
    ".wav", ".flac", ".amr", ".3gp", ".caf", ".wma", ".aiff", ".aif",
})
# A decoded stream may fall this far short of its declared length before we
# call the file truncated (encoder padding and rounding stay well inside it).
TRUNCATION_TOLERANCE_S = 0.3


@dataclass(frozen=True)
class Audio:
    """A decoded voice note."""

    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    source_rate: int
    codec: str

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def check_readable(path: Path, max_bytes: int | None = None) -> int:
    """Fail early, in words, on a path that cannot be a voice note; return its size."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileMissing(path, "no such file") from None
    except PermissionError:
        raise FileUnreadable(path, "permission denied") from None
    except OSError as e:
        raise FileUnreadable(path, f"cannot read ({e.strerror})") from None
    if path.is_dir():
        raise FileMissing(path, "is a directory, not an audio file")
    if not path.is_file():
        raise NotAudio(path, "not a regular file")
    if st.st_size == 0:
        raise EmptyFile(path, "empty file (0 bytes)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileTooLarge(path, f"too large ({st.st_size / 2**20:.0f} MB; the limit is "
                                 f"{max_bytes / 2**20:.0f} MB, set max_file_mb to change it)")
    try:
        with path.open("rb") as f:
            f.read(1)
    except PermissionError:
        raise FileUnreadable(path, "permission denied") from None
    except OSError as e:
        raise FileUnreadable(path, f"cannot read ({e.strerror})") from None
    return st.st_size


def decode(path: str | Path, max_bytes: int | None = None) -> Audio:
    """Decode a whole file; raise an `InputError` saying why when it cannot be."""
    import av

    path = Path(path)
    check_readable(path, max_bytes)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.PermissionError:
        raise FileUnreadable(path, "permission denied") from None
    except (av.error.InvalidDataError, av.error.EOFError, av.error.OSError, ValueError):
        raise NotAudio(path, "not an audio file, or damaged beyond reading") from None
    except av.error.FFmpegError as e:
        raise NotAudio(path, f"cannot be decoded ({e.strerror or type(e).__name__})") from None
    with container:
        if not container.streams.audio:
            raise NotAudio(path, "has no audio stream")
        stream = container.streams.audio[0]
        declared = _declared_duration(container, stream)
        samples = _decode_stream(path, container, stream)
    decoded = len(samples) / SAMPLE_RATE
    if decoded == 0:
        raise NotAudio(path, "contains no decodable audio")
    if declared is not None and decoded < declared - TRUNCATION_TOLERANCE_S:
        raise TruncatedAudio(path, f"truncated: the audio stops at {decoded:.1f} s of "
                                   f"{declared:.1f} s (an incomplete download or copy?)")
    if stream.codec_context.name in ("opus", "vorbis", "flac") and _ogg_missing_end(path):
        raise TruncatedAudio(path, f"truncated: the Ogg stream stops at {decoded:.1f} s without "
                                   "its end marker (an incomplete download or copy?)")
    return Audio(samples, stream.codec_context.sample_rate or SAMPLE_RATE,
                 stream.codec_context.name)


class OpusEncoder:
    """Streams mono int16 blocks at any rate into 16 kHz Ogg/Opus (PyAV, no ffmpeg binary).

    The resampler is libswresample's, properly filtered: no aliasing from naive
    decimation. `target` is a path or a binary file object.
    """

    def __init__(self, target, input_rate: int, bitrate: int = OPUS_BITRATE) -> None:
        import av

        self.input_rate = input_rate
        self.samples_in = 0
        self._container = av.open(target, "w", format="ogg")
        self._stream = self._container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        self._stream.bit_rate = bitrate
        self._resampler = av.AudioResampler(format=self._stream.codec_context.format.name,
                                            layout="mono", rate=SAMPLE_RATE)

    def write(self, block: np.ndarray) -> None:
        import av

        if block.size == 0:
            return
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1).astype(np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = self.input_rate
        frame.pts = None
        self.samples_in += block.size
        for out in self._resampler.resample(frame):
            self._mux(out)

    def close(self) -> None:
        for out in self._resampler.resample(None):
            self._mux(out)
        self._mux(None)
        self._container.close()

    def _mux(self, frame) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)


def encode_opus(samples: np.ndarray) -> bytes:
    """16 kHz mono float samples to an Ogg/Opus file in memory."""
    import io

    buffer = io.BytesIO()
    encoder = OpusEncoder(buffer, SAMPLE_RATE)
    encoder.write((np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16))
    encoder.close()
    return buffer.getvalue()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _decode_stream(path: Path, container, stream) -> np.ndarray:
    import av

    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    bad_packets = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                bad_packets += 1
                continue
            for frame in frames:
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as e:
        raise NotAudio(path, f"damaged audio ({e.strerror or type(e).__name__})") from None
    if bad_packets:
        log.warning("%s: skipped %d damaged packet(s)", path, bad_packets)
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return (np.concatenate(chunks).astype(np.float32) / 32768.0)


def _declared_duration(container, stream) -> float | None:
    """The length the file says it has, where its format says it reliably."""
    fmt = container.format.name
    if "ogg" in fmt:
        return None  # Ogg derives it from the last page present: checked separately
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _ogg_missing_end(path: Path) -> bool:
    """True when an Ogg file's last page lacks the end-of-stream flag."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(4) != b"OggS":
            return False
        f.seek(max(0, size - 65536))
        tail = f.read()
    last = tail.rfind(b"OggS")
    if last < 0 or last + 5 >= len(tail):
        return True
    header_type = tail[last + 5]
    return not header_type & 0x04


def is_audio_name(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


__all__ = ["Audio", "InputError", "SAMPLE_RATE", "check_readable", "decode", "file_sha256",
           "is_audio_name"]
