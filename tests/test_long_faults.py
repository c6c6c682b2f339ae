"""Long notes as a hostile user has them: damaged across a block's end, written to
a folder that cannot take the transcript, interrupted.

The notes are built at test time from the sample clips (`longnote.build`), a
little over one 2-minute block (`transcribe.blocks.BLOCK_S`) so the block seam
is crossed and each test stays short.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES, json_lines, run_cli
from longnote import build

OPENING = SAMPLES / "PTT-20240312-WA0007.opus"  # "Hi Sam, ... start the meeting without me."
MARKER = SAMPLES / "real" / "jfk-PTT-20240101-WA0001.opus"  # "And so my fellow Americans, ..."
CLOSING = SAMPLES / "voicemail-8k.wav"  # "Please call me back when you get this message."
FILLER = [SAMPLES / "real" / "fleurs-en-008.ogg", SAMPLES / "audio_2024-03-12_18-45-02.ogg",
          SAMPLES / "New Recording 12.m4a"]
BLOCK_S = 120.0  # transcribe.blocks.BLOCK_S
LONG_S = 140.0
MP3_BITRATE = 32000


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


@pytest.fixture(scope="module")
def long_ogg(tmp_path_factory) -> tuple[Path, list]:
    """A 2:20 note: opening, filler, JFK across the block's end at 2:00, closing."""
    path = tmp_path_factory.mktemp("long") / "lecture.ogg"
    placed = build(path, LONG_S, FILLER, opening=OPENING, closing=CLOSING, marker=MARKER,
                   marker_at=BLOCK_S - 5)
    return path, placed


@pytest.fixture(scope="module")
def long_mp3(long_ogg) -> Path:
    """The same note as a constant-bitrate MP3 (PyAV's LAME, with its Info header,
    which says how long the note is)."""
    from transcribe.audio import decode

    path = long_ogg[0].with_suffix(".mp3")
    _encode(decode(long_ogg[0]).samples, path, "libmp3lame", 16000, format="mp3",
            bit_rate=MP3_BITRATE)
    return path


def _encode(samples: np.ndarray, path: Path, codec: str, rate: int, *,
            format: str | None = None, bit_rate: int | None = None,
            options: dict | None = None) -> None:
    """16 kHz float samples written to `path` as `codec` at `rate`."""
    import av

    with av.open(str(path), "w", format=format, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono",
                                      rate=rate)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16000, None
        for frame in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(frame):
                out.mux(packet)


def _cut_mp3(source: Path, target: Path, start_s: float, end_s: float) -> None:
    """`source` with the bytes of `start_s`..`end_s` cut out (constant bitrate: a
    second is MP3_BITRATE / 8 bytes)."""
    data = source.read_bytes()
    per_s = MP3_BITRATE / 8
    target.write_bytes(data[:int(start_s * per_s)] + data[int(end_s * per_s):])


def _ogg_page_at(data: bytes, seconds: float) -> int:
    """The offset of the first Ogg page whose granule position (48 kHz for Opus)
    passes `seconds`."""
    import struct

    for match in re.finditer(b"OggS", data):
        granule = struct.unpack("<q", data[match.start() + 6:match.start() + 14])[0]
        if granule > 0 and granule / 48000 >= seconds:
            return match.start()
    return len(data)


def _cut_ogg(source: Path, target: Path, start_s: float, end_s: float) -> None:
    data = source.read_bytes()
    target.write_bytes(data[:_ogg_page_at(data, start_s)] + data[_ogg_page_at(data, end_s):])


def _clock(line: str, label: str) -> float:
    minutes, seconds = re.search(label + r" (\d+):(\d\d)", line).groups()
    return int(minutes) * 60 + int(seconds)


def test_a_stretch_cut_out_near_the_block_end_is_damage_named_where_it_is(long_ogg, long_mp3,
                                                                          tmp_path, home):
    """3 s of bytes cut out just after the block's end (2:10) of an MP3 and at it
    (2:00) of an Ogg/Opus note: each is transcribed to its end, marked damaged, not
    truncated, with one warning line saying where; the sentence across 2:00 comes
    out once, the closing words are there. (The MP3 was called "truncated: the
    audio stops at 2:30 of 2:33", though its audio plays to the end, and neither
    line said where the damage was.)"""
    mp3, ogg = tmp_path / "holed.mp3", tmp_path / "holed.ogg"
    _cut_mp3(long_mp3, mp3, 130, 133)
    _cut_ogg(long_ogg[0], ogg, 120, 123)

    result = run_cli("--no-store", "--json", str(mp3), str(ogg), timeout=900)

    assert result.returncode == 1, result.stderr  # README: damaged makes the exit code 1
    done = {Path(d["file"]).name: d for d in json_lines(result.stdout)}
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    for path, at in ((mp3, 130), (ogg, 120)):
        note = done[path.name]
        assert note["damaged"] and not note["truncated"], (path.name, note["notes"])
        [line] = [w for w in warnings if w.startswith(f"warning: {path}: damaged: ")]
        assert at - 4 <= _clock(line, "the first at") <= at + 1, line
        text = _words(note["text"])
        assert text.count("fellow americans") == 1, text
        assert "message" in text.split()[-5:], text[-200:]  # "...when you get this message"
        assert note["duration"] > LONG_S - 5
    assert len(warnings) == 2, result.stderr


def _one_error_line(result, *words: str) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(word in errors[0] for word in words), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return errors[0]


def test_a_read_only_output_folder_is_said_before_a_long_note_is_transcribed(long_ogg,
                                                                              small_disk, home):
    """`-o` on a read-only folder: one line and exit 1 at once, not an internal error
    (exit 70) after the whole note was transcribed and its text thrown away."""
    import subprocess

    out = small_disk / "transcripts"
    out.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    result = run_cli("--no-store", "-o", str(out), "-f", "txt,srt", str(long_ogg[0]))

    assert result.returncode == 1, result.stderr
    _one_error_line(result, str(out), "Read-only file system")
    assert not list(out.iterdir())


def test_a_disk_full_for_the_output_keeps_the_transcript_and_says_so(small_disk, tmp_path, home):
    """The output folder fills up while the note is transcribed: one line naming the
    note, exit 1, no half-written transcript beside the notes, and the text is in the
    store (`transcribe search` finds it), not lost."""
    from conftest import private_home

    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    note = SAMPLES / "PTT-20240312-WA0007.opus"
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # the disk full to the last block
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)

    result = run_cli("-o", str(small_disk), "-f", "txt,json", str(note), env=env)

    assert result.returncode == 1, result.stderr
    _one_error_line(result, str(note), "No space left on device", "kept in the store")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
    found = run_cli("search", "meeting", env=env)
    assert found.returncode == 0 and note.name in found.stdout, found.stdout + found.stderr


def test_a_browser_recording_that_claims_no_length_shows_progress_short_of_the_end(
        long_ogg, tmp_path, transcriber):
    """A WebM without a duration, over two blocks: while it is transcribed, the
    progress it reports (the bar, `transcribe status`, the TUI) is short of its
    total until the end, and the total comes near its length early. (It was `done`
    of `done`: 100 % from the first block on.)"""
    from transcribe.audio import AudioStream, decode

    note = tmp_path / "recording.webm"
    # Opus in WebM as a browser's MediaRecorder writes it: 48 kHz, written live,
    # so the file says nothing of its length.
    _encode(decode(long_ogg[0]).samples, note, "libopus", 48000, format="webm",
            options={"live": "1"})
    assert AudioStream(note).expected is None  # the file claims no length
    events = []

    transcript = transcriber.transcribe(note, on_progress=lambda done, total, segments:
                                        events.append((done, total)))

    duration = transcript.duration
    assert duration > BLOCK_S + 10 and _words(transcript.text).count("fellow americans") == 1
    assert events[-1] == (pytest.approx(duration, abs=0.5), pytest.approx(duration, abs=0.5))
    before_end = [(done, total) for done, total in events if done < duration - 5]
    assert before_end and all(done < total for done, total in before_end), events
    first_block = [total for done, total in before_end if done <= BLOCK_S]
    assert first_block and all(abs(total - duration) < 0.2 * duration
                               for total in first_block[len(first_block) // 2:]), events


def test_one_sentence_at_minute_29_of_a_silent_half_hour_is_timed_where_it_is_said(
        tmp_path, transcriber):
    """30 minutes of silence with JFK's sentence at 29:00: the sentence comes out
    once, timed from when it is said, not from the silence before it (it was timed
    from 28:46: Whisper stretched it over the piece's leading silence), and the
    progress ends at the note's end."""
    from transcribe.audio import OpusEncoder, decode

    at = 29 * 60.0
    speech = (decode(MARKER).samples * 32767).astype(np.int16)
    note = tmp_path / "silent-half-hour.ogg"  # as `transcribe record` writes it
    opus, minute = OpusEncoder(note, 16000), np.zeros(60 * 16000, dtype=np.int16)
    for _ in range(29):
        opus.write(minute)
    opus.write(speech)
    opus.write(minute[:len(minute) // 2])
    opus.close()
    said_until = at + len(speech) / 16000
    events = []

    transcript = transcriber.transcribe(note, on_progress=lambda done, total, segments:
                                        events.append(done))

    assert _words(transcript.text).count("fellow americans") == 1, transcript.text
    segments = transcript.segments
    assert at - 1 <= segments[0].start <= at + 2, segments[0]
    assert all(seg.end <= said_until + 1 for seg in segments), segments
    assert events[-1] == pytest.approx(transcript.duration, abs=0.5)


def test_a_half_copied_wav_is_truncated_not_whole(long_ogg, tmp_path, home):
    """An 8 kHz WAV of 2:33 whose copy stopped half way: its header says how long
    it is, so it is transcribed as far as it goes with `truncated` and a warning
    saying where it stops (exit 1), and the watcher's check waits for the rest.
    (FFmpeg measures a WAV by its bytes: it came out whole, exit 0, and the
    watcher took it as done.)"""
    from transcribe.audio import check_whole, decode
    from transcribe.errors import TruncatedAudio

    whole = tmp_path / "voicemail-long.wav"
    _encode(decode(long_ogg[0]).samples, whole, "pcm_s16le", 8000, format="wav")
    cut = tmp_path / "voicemail-long-cut.wav"
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2])

    result = run_cli("--no-store", "--json", str(cut), timeout=900)

    assert result.returncode == 1, result.stderr
    [note] = json_lines(result.stdout)
    assert note["truncated"] and "meeting" in _words(note["text"]).split()[:25], note
    [line] = [w for w in result.stderr.splitlines() if w.startswith("warning:")]
    assert line.startswith(f"warning: {cut}: truncated: the audio stops at "), line
    assert 70 <= _clock(line, "stops at") <= 80 and _clock(line, "of") >= LONG_S, line
    with pytest.raises(TruncatedAudio):
        check_whole(cut)
    check_whole(whole)


def test_the_progress_of_a_note_shorter_than_it_claims_ends_at_its_end(long_mp3, tmp_path,
                                                                      transcriber):
    """A 2:33 MP3 whose download stopped at 1:40: progress is monotone, its segments
    come in time order without overlap, and it ends at what there is to transcribe,
    done of done (it ended at 1:40 of 2:33, the bar and `transcribe status` at 65 %)."""
    cut = tmp_path / "cut.mp3"
    data = long_mp3.read_bytes()
    cut.write_bytes(data[:int((LONG_S - 40) * MP3_BITRATE / 8)])
    events = []

    transcript = transcriber.transcribe(cut, on_progress=lambda done, total, segments:
                                        events.append((done, total, segments)))

    assert transcript.truncated
    done = [event[0] for event in events]
    assert done == sorted(done) and all(d <= total for d, total, _ in events)
    assert events[-1][:2] == (pytest.approx(transcript.duration, abs=0.5),) * 2, events[-1]
    told = [seg for event in events for seg in event[2]]
    assert [seg.start for seg in told] == sorted(seg.start for seg in told)
    assert all(b.start >= a.end - 0.5 for a, b in zip(told, told[1:])), told


def test_text_after_ogg_pages_lost_keeps_the_files_clock(long_ogg, tmp_path, transcriber):
    """8 s of Ogg pages lost at 1:30 (a bad copy): the text after the hole is timed
    where it is heard in a player, so subtitles stay in sync to the end; it was
    timed 8 s early from the hole on, and the note was 8 s short."""
    from transcribe.audio import decode

    note, placed = long_ogg
    holed = tmp_path / "holed.ogg"
    _cut_ogg(note, holed, 90, 98)
    closing = placed[-1]
    assert closing.name == CLOSING.name

    transcript = transcriber.transcribe(holed)

    assert transcript.damaged and not transcript.truncated
    assert transcript.duration == pytest.approx(decode(note).duration, abs=0.5)
    last = transcript.segments[-1]
    assert "message" in _words(last.text).split(), last
    assert abs(last.end - closing.end) < 2.0 and abs(last.start - closing.start) < 2.0, \
        (last, closing)
