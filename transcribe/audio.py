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
from typing import Iterator

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
# A note that falls short of its declared length, with damage seen at least this
# long before the end of what was read, lost a stretch in the middle: damaged there,
# not truncated. (An MP3 with 3 s cut out at 2:00 decodes to the file's end, its
# timestamps seamless, 3 s short of its LAME header's length, with one packet the
# decoder refuses at 1:59.)
HOLE_BEFORE_END_S = 2.0


@dataclass(frozen=True)
class Audio:
    """A decoded voice note, and how much of the file it is.

    `truncated` and `unreadable` are only ever set by `decode(partial=True)`:
    the audio then holds what could be read, and the caller says so.
    """

    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    source_rate: int
    codec: str
    declared: float | None = None  # the length the file says it has, where it says so
    truncated: bool = False  # the audio stops before the file's declared end
    unreadable: float = 0.0  # seconds inside the note that could not be decoded
    damaged: bool = False  # corrupt stretches were skipped (`unreadable` says how long)
    damaged_at: float | None = None  # where the first was met, on the audio's clock
    filled: float = 0.0  # seconds of silence standing in for stretches that never arrived

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def expected(self) -> float:
        return self.duration

    def chunks(self) -> Iterator[np.ndarray]:
        """The samples in views of at most a minute, as an `AudioStream` gives its chunks."""
        step = 60 * SAMPLE_RATE
        for start in range(0, len(self.samples), step):
            yield self.samples[start:start + step]


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


def decode(path: str | Path, max_bytes: int | None = None, *, partial: bool = False) -> Audio:
    """Decode a whole file; raise an `InputError` saying why when it cannot be.

    A file that stops before its declared end raises `TruncatedAudio`, unless
    `partial` is set: then the audio that is there comes back with `truncated`
    set (the watcher leaves it unset, so an unfinished download is waited for).
    Corrupt stretches are skipped and counted in `unreadable`, with `damaged` set.
    """
    stream = AudioStream(path, max_bytes)
    audio = stream.read_all()
    if stream.truncated and not partial:
        raise TruncatedAudio(stream.path, stream.reason)
    return audio


def check_whole(path: str | Path, max_bytes: int | None = None) -> None:
    """Raise what `decode` would raise on `path`, reading it chunk by chunk: the
    watcher's check that a note has arrived whole holds no more of a three-hour
    recording than `AudioStream` does."""
    stream = AudioStream(path, max_bytes)
    stream.finish()
    if stream.truncated:
        raise TruncatedAudio(stream.path, stream.reason)


class AudioStream:
    """A note decoded as it is read: 16 kHz mono float32 chunks, a few ms each.

    The file is opened and checked when the stream is made (an `InputError`
    says why it cannot be read). How much of the file the audio is (`truncated`,
    `damaged`, `unreadable`, `duration`) is known once `chunks()` has run to
    the end, as `decode` tells it; `expected` is the length the file claims,
    for progress before that. A three-hour note is 690 MB as one float32
    array; read this way, only the chunk at hand is held.
    """

    def __init__(self, path: str | Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._container = self._open()
        stream = self._stream
        self.declared = _declared_duration(self._container, stream)
        if self._container.format.name == "wav":
            self.declared = _wav_declared(self.path) or self.declared
        self.codec = stream.codec_context.name
        self.source_rate = stream.codec_context.sample_rate or SAMPLE_RATE
        duration = self._container.duration
        self._last_page = duration / 1_000_000 if duration is not None else None
        self._claimed = self.declared or self._last_page
        self._decoder: _StreamDecoder | None = None
        self.samples_read = 0
        self.read = False  # chunks() has run to the end: the fields below are final
        self.truncated = self.damaged = False
        self.unreadable = 0.0
        self.damaged_at: float | None = None
        self.filled = 0.0
        self.reason: str | None = None

    def _open(self):
        import av

        self._size = check_readable(self.path, self.max_bytes)
        try:
            container = av.open(str(self.path), mode="r", metadata_errors="ignore")
        except av.error.PermissionError:
            raise FileUnreadable(self.path, "permission denied") from None
        except (av.error.InvalidDataError, av.error.EOFError, av.error.OSError, ValueError):
            raise NotAudio(self.path, "not an audio file, or damaged beyond reading") from None
        except av.error.FFmpegError as e:
            raise NotAudio(self.path,
                           f"cannot be decoded ({e.strerror or type(e).__name__})") from None
        try:
            if not container.streams.audio:
                raise NotAudio(self.path, "has no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context is None:
                raise NotAudio(self.path, "its audio is in a codec this build cannot decode")
        except InputError:
            container.close()
            raise
        self._stream = stream
        return container

    @property
    def duration(self) -> float:
        return self.samples_read / SAMPLE_RATE

    @property
    def expected(self) -> float | None:
        """The note's length as far as it is known: once read to the end, the audio
        read (a truncated note's progress ends at 100 %, not at the share of its
        claim it holds); before, what the file claims; else the audio so far scaled
        by the share of the file's bytes it came from.

        A browser's WebM (MediaRecorder) claims no length: without the estimate, its
        progress was `done` of `done`, 100 % from the first block to the last."""
        if self.read:
            return self.duration
        if self._claimed is not None:
            return self._claimed
        decoder = self._decoder
        if decoder is None or not decoder.position or not decoder.decoded:
            return None
        return decoder.decoded / SAMPLE_RATE * max(1.0, self._size / decoder.position)

    def chunks(self) -> Iterator[np.ndarray]:
        """The audio, chunk by chunk, from the start; at the end the damage fields are set.

        Every call reads the file afresh, also while another reader is part way
        (the cloud re-reads a stretch of a part too large to upload): each counts
        its own samples, and only one that reaches the end sets `duration`."""
        container, self._container = self._container or self._open(), None
        decoder = self._decoder = _StreamDecoder(self.path, container, self._stream)
        count = 0
        try:
            for chunk in decoder.chunks():
                count += len(chunk)
                yield chunk.astype(np.float32) / 32768.0
        finally:
            container.close()
        self.samples_read = count
        self.filled = decoder.filled
        self._judge(decoder.lost, decoder.damaged, decoder.damaged_at)
        self.read = True

    def finish(self) -> None:
        """Read to the end, holding nothing, if nobody has: the damage fields need it."""
        if not self.read:
            for _ in self.chunks():
                pass

    def read_all(self, up_to: float | None = None) -> Audio | None:
        """The whole note in memory, as `decode(partial=True)` gives it; None if it
        is longer than `up_to` seconds (it is then read no further than that)."""
        chunks, held = [], 0
        for chunk in self.chunks():
            chunks.append(chunk)
            held += len(chunk)
            if up_to is not None and held > up_to * SAMPLE_RATE:
                return None
        return Audio(np.concatenate(chunks), self.source_rate, self.codec,
                     declared=self.declared, truncated=self.truncated,
                     unreadable=self.unreadable, damaged=self.damaged,
                     damaged_at=self.damaged_at, filled=self.filled)

    def _judge(self, unreadable: float, damaged: bool, damaged_at: float | None) -> None:
        """How much of the file the audio was, from what it says and what was read."""
        path, seconds = self.path, self.duration
        heard = seconds - self.filled  # decoded, without the silence put in for gaps
        if heard <= 0:
            raise NotAudio(path, "contains no decodable audio")
        ogg = self.codec in ("opus", "vorbis", "flac") and _is_ogg(path)
        truncated = False
        if (self.declared is not None
                and heard + unreadable < self.declared - TRUNCATION_TOLERANCE_S):
            if damaged_at is not None and damaged_at < seconds - HOLE_BEFORE_END_S:
                unreadable = self.declared - heard  # a hole in the middle, read past
            else:
                truncated = True
                self.reason = (f"truncated: the audio stops at {_clock(seconds)} of "
                               f"{_clock(self.declared)} (an incomplete download or copy?)")
        if ogg and _ogg_missing_end(path):
            truncated = True
            self.reason = (f"truncated: the Ogg stream stops at {_clock(seconds)} without its "
                           "end marker (an incomplete download or copy?)")
        if ogg and not truncated:
            unreadable, damaged = _ogg_shortfall(self._last_page, heard, unreadable, damaged)
        self.truncated, self.unreadable, self.damaged = truncated, unreadable, damaged
        self.damaged_at = damaged_at if damaged else None


def damage_report(audio: Audio) -> list[str]:
    """What a user should be told about a partly readable note: one line, or none."""
    lines = []
    if audio.truncated:
        of = f" of {_clock(audio.declared)}" if audio.declared else ""
        lines.append(f"truncated: the audio stops at {_clock(audio.duration)}{of}; "
                     "transcribed as far as it goes")
    if audio.damaged:
        first = (f" (the first at {_clock(audio.damaged_at)})"
                 if audio.damaged_at is not None else "")
        if audio.unreadable >= 0.1:
            total = audio.duration - audio.filled + audio.unreadable
            lines.append(f"damaged: about {audio.unreadable:.1f} s of {total:.1f} s "
                         f"({audio.unreadable / total:.0%}) could not be read{first}; "
                         "the rest is transcribed")
        else:
            lines.append(f"damaged: corrupt data was skipped{first}; the rest is transcribed")
    return ["; ".join(lines)] if lines else []


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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _Resampler:
    """libswresample to 16 kHz mono s16, rebuilt when the input frames change shape.

    A damaged mp3 can switch sample rate or channel layout mid-stream (a flipped
    bit in a frame header); PyAV's resampler raises ValueError on that."""

    def __init__(self) -> None:
        self._resampler = None
        self._shape = None

    def add(self, frame) -> Iterator[np.ndarray]:
        import av

        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if shape != self._shape:
            yield from self.flush()
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            self._shape = shape
        frame.pts = None
        yield from self._take(self._resampler.resample(frame))

    def flush(self) -> Iterator[np.ndarray]:
        if self._resampler is not None:
            resampler, self._resampler, self._shape = self._resampler, None, None
            yield from self._take(resampler.resample(None))

    @staticmethod
    def _take(frames) -> Iterator[np.ndarray]:
        for out in frames:
            yield out.to_ndarray().reshape(-1)


class _StreamDecoder:
    """Decode every packet that can be; count, in seconds, what cannot.

    A packet the decoder refuses, a frame it marks corrupt and a jump forward in
    the packets' timestamps (pages the demuxer dropped, e.g. on an Ogg CRC
    mismatch) are damage; an error of the demuxer ends the stream there."""

    def __init__(self, path: Path, container, stream) -> None:
        self.path, self.container, self.stream = path, container, stream
        self.damaged = False
        self.lost = 0.0
        self.damaged_at: float | None = None  # seconds decoded when damage was first met
        self.position = 0  # bytes into the file, up to the end of the last packet read
        self.filled = 0.0  # seconds of silence yielded for stretches that never arrived
        self.decoded = 0  # samples yielded so far, at SAMPLE_RATE

    def chunks(self) -> Iterator[np.ndarray]:
        """int16 chunks as they are decoded; `damaged` and `lost` are final after the last."""
        import av

        resampler = _Resampler()
        clock = _Timeline(self.stream)
        damaged = False
        try:
            for packet in self.container.demux(self.stream):
                if packet.pos is not None and packet.pos >= 0:
                    self.position = packet.pos + packet.size
                if clock.see(packet):
                    self._met_damage()
                    yield from self._counted(resampler.flush())
                    yield from self._counted(self._silence(clock.last_gap))
                try:
                    frames = packet.decode()
                except (av.error.FFmpegError, ValueError):
                    damaged = True
                    self._met_damage()
                    clock.lose(packet)
                    continue
                for frame in frames:
                    if frame.is_corrupt:
                        damaged = True
                        self._met_damage()
                        clock.lose_frame(frame)
                    yield from self._counted(resampler.add(frame))
        except (av.error.FFmpegError, ValueError) as e:
            log.info("%s: the stream ends in damaged data (%s)", self.path, e)
            damaged = True
            self._met_damage()
        try:
            yield from self._counted(resampler.flush())
        except (av.error.FFmpegError, ValueError):
            damaged = True
            self._met_damage()
        self.damaged = damaged or clock.gaps > 0 or clock.lying
        self.lost = clock.lost
        if self.damaged:
            log.info("%s: about %.1f s unreadable", self.path, clock.lost)

    def _counted(self, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for chunk in chunks:
            self.decoded += len(chunk)
            yield chunk

    def _silence(self, seconds: float) -> Iterator[np.ndarray]:
        """Silence in the place of a stretch that never arrived (Ogg pages dropped),
        so what follows keeps the file's clock: the text after 3 s lost at 2:00 of
        an Ogg note was timed 3 s early, subtitles off by that much to the end."""
        left = round(seconds * SAMPLE_RATE)
        self.filled += left / SAMPLE_RATE
        while left > 0:
            size = min(left, SAMPLE_RATE)
            left -= size
            yield np.zeros(size, dtype=np.int16)

    def _met_damage(self) -> None:
        if self.damaged_at is None:
            self.damaged_at = self.decoded / SAMPLE_RATE


class _Timeline:
    """Where the packets say they are, to find stretches that never arrived."""

    # Forward jumps below this are container rounding, not lost data.
    GAP_S = 0.05
    # A jump beyond this is a lying timestamp (a bogus Ogg granule position can
    # claim 2**63 samples), not hours of lost audio: damage of unknown length.
    MAX_GAP_S = 3600.0

    def __init__(self, stream) -> None:
        self.time_base = stream.time_base
        self.rate = stream.codec_context.sample_rate or SAMPLE_RATE
        self.expected: float | None = None
        self.gaps = 0.0
        self.lying = False  # some timestamp jumped implausibly far
        self.last_gap = 0.0  # seconds the last jump skipped (0 for a lying one)
        self.lost_packets = 0.0

    def see(self, packet) -> bool:
        """Note where `packet` is; True when it jumps past a stretch that never arrived."""
        if packet.pts is None or self.time_base is None:
            return False
        start = float(packet.pts * self.time_base)
        jumped = self.expected is not None and start - self.expected > self.GAP_S
        if jumped:
            self.lying |= start - self.expected > self.MAX_GAP_S
            self.last_gap = 0.0 if self.lying else start - self.expected
            self.gaps += self.last_gap
        length = float(packet.duration * self.time_base) if packet.duration else 0.0
        self.expected = max(self.expected or 0.0, start + length)
        return jumped

    def lose(self, packet) -> None:
        if packet.duration and self.time_base is not None:
            self.lost_packets += float(packet.duration * self.time_base)

    def lose_frame(self, frame) -> None:
        self.lost_packets += frame.samples / self.rate

    @property
    def lost(self) -> float:
        return self.gaps + self.lost_packets


def _ogg_shortfall(declared: float | None, seconds: float, unreadable: float,
                   damaged: bool) -> tuple[float, bool]:
    """A whole Ogg file (end marker present) that decodes shorter than its last
    page says (`declared`) lost pages in the middle: damaged, not truncated."""
    if declared is None:
        return unreadable, damaged
    missing = declared - seconds - unreadable
    if missing <= TRUNCATION_TOLERANCE_S:
        return unreadable, damaged
    # A bogus granule position can claim hours: the loss is then unknown, not hours.
    if declared > 4 * seconds + 60:
        return unreadable, True
    return unreadable + missing, True


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _is_ogg(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"OggS"


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


def _wav_declared(path: Path) -> float | None:
    """The length a RIFF/WAVE header gives its data chunk, in seconds. FFmpeg takes
    a WAV's length from the bytes present, so a half-copied one looked whole (a
    2:33 note cut at half: 1:16, exit 0). None for the sizes a recorder writes
    before it knows the length (0, or 0xFFFFFFFF and near it)."""
    import struct

    with path.open("rb") as f:
        head = f.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position, byte_rate = 12, None
    while position + 8 <= len(head):
        kind, size = head[position:position + 4], struct.unpack(
            "<I", head[position + 4:position + 8])[0]
        if kind == b"fmt " and position + 20 <= len(head):
            byte_rate = struct.unpack("<I", head[position + 16:position + 20])[0]
        elif kind == b"data":
            if not byte_rate or size == 0 or size >= 0x7FFFF000:
                return None
            return size / byte_rate
        position += 8 + size + (size & 1)
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


__all__ = ["Audio", "InputError", "SAMPLE_RATE", "check_readable", "damage_report", "decode",
           "file_sha256", "is_audio_name"]
