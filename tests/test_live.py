"""Words while you record: `transcribe record --live` through real PortAudio, with an
ALSA capture device that reads a FIFO fed at the pace of a real microphone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from conftest import REFERENCES, ROOT, SAMPLES, json_lines, run_cli
from test_record import ASOUNDRC, needs_portaudio, resample_int16
from wer import wer

from transcribe.audio import decode

RATE = 44100  # the ALSA file device's default rate: the TUI records at it
# Three real notes with a pause after each: the first one's text must show while the
# other two are still being said.
NOTES = ["PTT-20240312-WA0007.opus", "voicemail-8k.wav", "audio_2024-03-12_18-45-02.ogg"]
PAUSE_S = 1.5


def spoken() -> np.ndarray:
    parts = []
    for name in NOTES:
        parts += [decode(SAMPLES / name).samples, np.zeros(int(PAUSE_S * 16000), np.float32)]
    return np.concatenate(parts)


class PacedMicrophone:
    """A HOME whose ALSA default capture device reads a FIFO, written in real time (the
    file device alone runs far faster than a microphone would)."""

    def __init__(self, tmp_path: Path, samples: np.ndarray) -> None:
        self.fifo = tmp_path / "mic.fifo"
        os.mkfifo(self.fifo)
        home = tmp_path / "user"
        home.mkdir()
        (home / ".asoundrc").write_text(ASOUNDRC.format(raw=self.fifo))
        self.env = {"HOME": str(home)}
        self.pcm = resample_int16(samples, RATE).tobytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)

    def __enter__(self) -> "PacedMicrophone":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        try:  # unblock an open() still waiting for a reader
            os.close(os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        self._thread.join(10)

    def _feed(self) -> None:
        step, sent, started = RATE // 10 * 2, 0, None
        while sent < len(self.pcm) and not self._stop.is_set():
            try:
                with open(self.fifo, "wb", buffering=0) as f:
                    started = started or time.monotonic() - sent / (2 * RATE)
                    while sent < len(self.pcm) and not self._stop.is_set():
                        f.write(self.pcm[sent:sent + step])
                        sent += step
                        time.sleep(max(0.0, started + sent / (2 * RATE) - time.monotonic()))
            except BrokenPipeError:  # PortAudio opened the device to look at it and closed
                continue             # it, or the recording stopped


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@needs_portaudio
def test_text_shows_at_each_pause_while_recording_and_the_final_text_is_the_files(
        tmp_path, home):
    audio = spoken()
    seconds = len(audio) / 16000 - 0.5
    saved = tmp_path / "memo.ogg"
    lines: list[tuple[float, str]] = []
    with PacedMicrophone(tmp_path, audio) as mic:
        proc = subprocess.Popen([sys.executable, "-m", "transcribe", "record", "--samplerate",
                                 str(RATE), "--seconds", f"{seconds:.1f}", "--live", "--json",
                                 "--save", str(saved)], cwd=ROOT, env={**os.environ, **mic.env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
        reader.start()
        for line in proc.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))
        proc.wait(300)
        reader.join(10)
    errors = "\n".join(line for _, line in lines)
    assert proc.returncode == 0, errors
    assert "dropped" not in errors
    live = [(at, line.removeprefix("live: ")) for at, line in lines if line.startswith("live: ")]
    assert live, errors
    # The first note's words came while the other notes were still being said (they
    # take 9 s more).
    first_at, first = live[0]
    [stopped_at] = [at for at, line in lines if line.startswith("recorded ")]
    assert first_at < stopped_at - 3, errors
    assert wer(REFERENCES[NOTES[0]]["text"], first) <= 0.2, first
    # In order: each note's words where they were said (the first two notes' at least).
    said = " ".join(text for _, text in live)
    places = [_place(name, said) for name in NOTES]
    found = [p for p in places if p >= 0]
    assert places[0] >= 0 and places[1] >= 0 and found == sorted(found), (said, places)
    # The final text is the saved file's transcript.
    [final] = json_lines(out[0])
    again = run_cli(str(saved), "--json")
    [of_file] = json_lines(again.stdout)
    assert _words(final["text"]) == _words(of_file["text"]), (final["text"], of_file["text"])
    reference = " ".join(REFERENCES[name]["text"] for name in NOTES)
    assert wer(reference, final["text"]) <= 0.15, final["text"]


def _place(name: str, said: str) -> int:
    """Where in `said` a word only this note's reference has first is, or -1."""
    words = _words(said)
    others = {w for other in NOTES if other != name for w in _words(REFERENCES[other]["text"])}
    for word in _words(REFERENCES[name]["text"]):
        if len(word) > 3 and word not in others and word in words:
            return words.index(word)
    return -1


TUI_DRIVER = r'''
import asyncio, json
from tui.app import TranscribeApp

async def main():
    app = TranscribeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r")
        await pilot.pause(0.5)
        await pilot.click("#toggle")
        live, elapsed = "", ""
        for _ in range(1200):  # the first pause's text, while recording
            await pilot.pause(0.1)
            live = str(app.screen.query_one("#live").render()).strip()
            if live:
                elapsed = str(app.screen.query_one("#elapsed").render())
                break
        await pilot.click("#toggle")
        rows = []
        for _ in range(1200):
            await pilot.pause(0.1)
            table = app.query_one("#inbox")
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            if any(r[5] == "✓ done" for r in rows):
                break
        print(json.dumps({"live": live, "elapsed": elapsed, "rows": rows}))

asyncio.run(main())
'''


@needs_portaudio
def test_the_tui_record_dialog_shows_the_words_so_far(tmp_path, home):
    from conftest import private_home

    data = private_home(tmp_path / "home", home)
    with PacedMicrophone(tmp_path, spoken()) as mic:
        result = subprocess.run([sys.executable, "-c", TUI_DRIVER], capture_output=True,
                                text=True, cwd=ROOT, timeout=300,
                                env={**os.environ, **mic.env, "TRANSCRIBE_HOME": str(data)})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert wer(REFERENCES[NOTES[0]]["text"], seen["live"]) <= 0.2, seen
    minutes, seconds = map(int, seen["elapsed"].split(":"))
    assert minutes * 60 + seconds < len(spoken()) / 16000 - 3, seen  # before the notes ended
    [row] = seen["rows"]
    assert row[5] == "✓ done" and "Sam" in row[6], seen
