"""Listening to a note in the TUI, through real PortAudio: the ALSA output is a file
(a FIFO the test reads at a sound card's pace), as the recorder's tests use for input."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REFERENCES, ROOT, SAMPLES, private_home
from test_record import portaudio_present, resample_int16, without_portaudio

from transcribe.audio import decode

NOTE = "audio_2024-03-12_18-45-02.ogg"  # "The train leaves at half past seven tomorrow..."
RATE = 48000  # the speaker's: ALSA's plug resamples the player's 16 kHz to it
SPEAKER = """
pcm.filespeaker {{
    type file
    slave.pcm "null"
    file "{out}"
    format "raw"
}}
pcm.speaker {{
    type plug
    slave {{
        pcm "filespeaker"
        format S16_LE
        rate {rate}
        channels 1
    }}
}}
pcm.!default {{
    type asym
    playback.pcm "speaker"
    capture.pcm "null"
}}
"""

DRIVER = r'''
import asyncio, json, sys
from tui.app import TranscribeApp

async def main():
    app = TranscribeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")  # the only note
        await pilot.pause()
        await pilot.press("down")  # its second segment
        await pilot.press("p")
        seen, status = [], ""
        for _ in range(300):
            await pilot.pause(0.1)
            status = str(app.screen.query_one("#play-status").render())
            playing = [line.index for line in app.screen.query(".playing")]
            if playing and (not seen or seen[-1] != playing):
                seen.append(playing)
            if "end" in status or "Cannot" in status:
                break
        await pilot.press("enter")  # the rest of the note view still works: fix a segment
        await pilot.pause()
        fixing = bool(app.screen.query("#fix-text"))
        print(json.dumps({"seen": seen, "status": status, "fixing": fixing}))

asyncio.run(main())
'''


CONTROL_DRIVER = r'''
import asyncio, json, re, sys
from tui.app import TranscribeApp

async def main():
    app = TranscribeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        status = lambda: str(app.screen.query_one("#play-status").render())
        clock = lambda: re.search(r"(\d\d):(\d\d\.\d) /", status()).groups()
        said = {}
        await pilot.press("p")  # from the first segment
        while "playing" not in status():
            await pilot.pause(0.05)
        await pilot.press("space")
        await pilot.pause(0.3)
        said["paused"], said["paused_at"] = status(), clock()
        await pilot.pause(1.0)
        said["still_at"] = clock()
        await pilot.press("right")
        await pilot.pause(0.3)
        said["jumped_to"] = clock()
        said["highlighted"] = [line.index for line in app.screen.query(".playing")]
        said["selected"] = app.screen.selected
        await pilot.press("up")  # paused, the selection is the person's to move
        await pilot.pause(0.5)
        said["moved_to"] = app.screen.selected
        await pilot.press("space")
        for _ in range(300):
            await pilot.pause(0.1)
            if "end" in status():
                break
        said["end"] = status()
        print(json.dumps(said))

asyncio.run(main())
'''


def segments(duration: float) -> list[tuple[float, float, str]]:
    """Three segments of the note at fixed times (playback is the subject, not the words).
    The second is 3 s long: the file device's buffers (the FIFO's, ALSA's) put what
    the player hands over up to 2.2 s ahead of what is read, which a sound card's
    reported latency would count, and the file device's does not."""
    return [(0.0, 1.5, "The train leaves at"), (1.5, 4.5, "half past seven tomorrow"),
            (4.5, round(duration, 2), "morning. Don't forget your ticket.")]


@pytest.fixture
def note_home(tmp_path, home) -> Path:
    """A TRANSCRIBE_HOME whose store holds NOTE with `segments`."""
    from transcribe.audio import file_sha256
    from transcribe.store import Store
    from transcribe.transcript import Segment, Transcript

    data = private_home(tmp_path / "home", home)
    note = tmp_path / NOTE
    shutil.copy(SAMPLES / NOTE, note)
    duration = decode(note).duration
    parts = [Segment(start, end, text) for start, end, text in segments(duration)]
    transcript = Transcript(file=str(note), text=REFERENCES[NOTE]["text"], language="en",
                            duration=duration, segments=parts, engine="local", model="base")
    store = Store.open_default(data / "data")
    store.record(str(note), file_sha256(note), note.stat().st_size, transcript)
    store.close()
    return data


def drive(env: dict, prefix: list[str] | None = None, speaker: Path | None = None,
          driver: str = DRIVER) -> tuple[dict, bytes]:
    """Run `driver`; read what it plays from the FIFO `speaker` at a sound card's pace."""
    proc = subprocess.Popen([*(prefix or []), sys.executable, "-c", driver], cwd=ROOT,
                            env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    played = bytearray()
    if speaker is not None:
        fd = os.open(speaker, os.O_RDONLY | os.O_NONBLOCK)  # a writer never waits to open
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)  # as little buffered as can be
        began = None
        try:
            while proc.poll() is None:
                select.select([fd], [], [], 0.05)
                if began is None:
                    began = time.monotonic()
                # 0.2 s ahead of real time, as a sound card's buffer takes it
                due = int((time.monotonic() - began + 0.2) * RATE) * 2 - len(played)
                if due > 0:
                    try:
                        played += os.read(fd, due)
                    except BlockingIOError:
                        pass
                time.sleep(0.02)
        finally:
            os.close(fd)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1]), bytes(played)


def file_speaker(tmp_path: Path) -> tuple[dict, Path]:
    """A HOME whose ALSA default output is a FIFO (`drive` reads it); and the FIFO."""
    speaker = tmp_path / "speaker.fifo"
    os.mkfifo(speaker)
    user = tmp_path / "user"
    user.mkdir()
    (user / ".asoundrc").write_text(SPEAKER.format(out=speaker, rate=RATE))
    return {"HOME": str(user)}, speaker


@pytest.mark.skipif(not portaudio_present(), reason="libportaudio2 is not installed")
def test_p_plays_the_note_from_the_selected_segment_and_highlights_as_it_goes(note_home,
                                                                              tmp_path):
    env, speaker = file_speaker(tmp_path)
    seen, played = drive({**env, "TRANSCRIBE_HOME": str(note_home)}, speaker=speaker)
    assert "played to the end" in seen["status"], seen
    assert seen["seen"][0] == [1] and seen["seen"][-1] == [2], seen["seen"]
    assert seen["fixing"]

    samples = decode(SAMPLES / NOTE).samples
    start = segments(len(samples) / 16000)[1][0]
    expected = resample_int16(samples[int(start * 16000):], RATE).astype(np.float32)
    heard = np.frombuffer(played, "<i2").astype(np.float32)
    # the whole rest of the note, from the segment's start: not a sample before it
    assert abs(len(heard) - len(expected)) < 0.15 * RATE, (len(heard), len(expected))
    lag, similarity = best_alignment(heard, expected, max_lag=int(0.1 * RATE))
    assert similarity > 0.9, (lag, similarity)
    # ahead of it only the silence PortAudio starts a stream with (44 ms here), and not
    # a sample of the note before the segment's start (give or take the 10 ms the
    # resamplers' filters smear the first sound over)
    lead = heard[:max(lag - RATE // 100, 0)]
    assert 0 <= lag < 0.1 * RATE and np.abs(lead).max(initial=0) < 20, lag


def best_alignment(heard: np.ndarray, expected: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The shift of `heard` against `expected` (samples) where they agree best, and their
    normalised correlation there (1: the same sound)."""
    length = min(len(heard), len(expected)) - 2 * max_lag
    reference = expected[max_lag:max_lag + length]
    best = (0, -1.0)
    for lag in range(-max_lag, max_lag + 1, 4):
        part = heard[max_lag + lag:max_lag + lag + length]
        score = float(np.dot(part, reference)
                      / (np.linalg.norm(part) * np.linalg.norm(reference) + 1e-9))
        if score > best[1]:
            best = (lag, score)
    return best


def test_without_portaudio_the_note_says_so_in_one_status_line(note_home):
    seen, _ = drive({"TRANSCRIBE_HOME": str(note_home)}, without_portaudio())
    assert seen["status"].startswith("Cannot play this note:"), seen
    assert "libportaudio2" in seen["status"] and "\n" not in seen["status"].strip()
    assert seen["seen"] == [] and seen["fixing"], seen


@pytest.mark.skipif(not portaudio_present(), reason="libportaudio2 is not installed")
def test_space_pauses_and_right_jumps_to_the_next_segment(note_home, tmp_path):
    env, speaker = file_speaker(tmp_path)
    said, _ = drive({**env, "TRANSCRIBE_HOME": str(note_home)}, speaker=speaker,
                    driver=CONTROL_DRIVER)
    assert "paused" in said["paused"], said
    assert said["still_at"] == said["paused_at"], "paused, it stays where it is"
    assert said["jumped_to"] == ["00", "01.5"], said  # the second segment's start
    assert said["highlighted"] == [1] and said["selected"] == 1, said
    assert said["moved_to"] == 0, said
    assert "played to the end" in said["end"], said
