"""Damaged notes, many at once, through the real CLI and a real watcher.

A bad file must never stop a batch or the watcher: each one is one line (an
error, or a warning for a note transcribed as far as it could be read), and
every good note among them is still transcribed. The damage is seeded
(`tests/damage.py`), so a failure names a variant that can be made again.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import REFERENCES, ROOT, SAMPLES, SILENT, SPEECH, json_lines, private_home
from damage import broken_moov, damaged_variants, flip_frame_headers, truncated
from wer import wer

SEED = 20240312
# The model runs on every variant that decodes: few of the speech notes (one kind
# of damage each), many of the silent ones (the VAD finds nothing: no model run),
# and greedy search (the words are not what this test is about). Every kind of
# damage on every speech note took 7 min here under a load of 5 on 2 cores.
SPEECH_KINDS = 1
FAST = {"TRANSCRIBE_BEAM_SIZE": "1"}
SILENT_PER_KIND = 8
# A non-UTF-8 name (Latin-1 from an old archive) for a good note and a damaged one.
NON_UTF8_GOOD = b"nota_\xe9.ogg"
NON_UTF8_GOOD_FROM = "audio_2024-03-12_18-45-02.ogg"
NON_UTF8_BAD = b"grabaci\xf3n_cortada.opus"
WER_BOUND = 0.4
MP4 = "New Recording 12.m4a"
MP3 = "AUD-20240311-WA0003.mp3"
# Seeds of flip_frame_headers whose mp3 switches rate or layout mid-stream: the
# decoder before the fix crashed on each ("Frame does not match AudioResampler
# setup", exit 70); 136 of 300 seeds do.
MP3_SWITCHING = (1, 3, 4)


def make_folder(folder: Path) -> tuple[dict[str, str], list[str]]:
    """Write the notes; return {good file name: its sample} and the damaged names."""
    folder.mkdir()
    originals = {name: (SAMPLES / name).read_bytes() for name in REFERENCES}
    variants = damaged_variants([SAMPLES / n for n in SPEECH], SEED, 1, kinds=SPEECH_KINDS)
    variants.update(damaged_variants([SAMPLES / n for n in SILENT], SEED + 1, SILENT_PER_KIND))
    rng = random.Random(SEED)
    for n in range(3):  # every kind of damage, whatever the draw above
        variants[f"New_Recording_12.moov-{n}.m4a"] = broken_moov(originals[MP4], rng)
    for n in MP3_SWITCHING:
        variants[f"AUD-20240311-WA0003.mp3head-{n}.mp3"] = flip_frame_headers(
            originals[MP3], random.Random(n))
    variants[os.fsdecode(NON_UTF8_BAD)] = truncated(originals["PTT-20240312-WA0007.opus"], rng)
    seen = set(originals.values())
    damaged = []
    for name, data in variants.items():
        if data in seen:  # the same bytes twice would be one note to the watcher
            continue
        seen.add(data)
        (folder / name).write_bytes(data)
        damaged.append(name)
    good = {}
    for name, data in originals.items():
        target = os.fsdecode(NON_UTF8_GOOD) if name == NON_UTF8_GOOD_FROM else name
        (folder / target).write_bytes(data)
        good[target] = name
    return good, damaged


def test_a_batch_of_damaged_notes_never_stops_the_cli_or_the_watcher(tmp_path, home):
    folder = tmp_path / "notes"
    good, damaged = make_folder(folder)
    assert len(damaged) >= 100
    names = sorted([*good, *damaged])

    cli_home = private_home(tmp_path / "cli-home", home)
    result = _run_cli("--json", "-q", *(str(folder / n) for n in names),
                      env={"TRANSCRIBE_HOME": str(cli_home), **FAST})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    lines = result.stderr.splitlines()
    said = _lines_per_file(lines, folder, names)
    assert all(len(said[n]) <= 1 for n in names), {n: said[n] for n in names if len(said[n]) > 1}
    assert len(lines) == sum(len(v) for v in said.values()), "every line names one file"
    done = {Path(d["file"]).name: d for d in json_lines(result.stdout)}
    for name in damaged:
        if name not in done:
            assert said[name] and said[name][0].startswith("error:"), name
        elif done[name]["truncated"] or done[name]["damaged"]:
            assert said[name] and said[name][0].startswith("warning:"), name
    for name, sample in good.items():
        _assert_transcribed(done[name], sample)
        assert not said[name], said[name]

    watch_home = private_home(tmp_path / "watch-home", home)
    log_path = tmp_path / "watch.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "transcribe", "watch", str(folder), "-o",
                                 str(tmp_path / "out"), "--settle", "0.2", "--grace", "0",
                                 "--poll", "0.2"], stderr=log, cwd=ROOT,
                                env=dict(os.environ, TRANSCRIBE_HOME=str(watch_home), **FAST))
        try:
            rows = _wait_until_all_settled(watch_home, len(names), proc, log_path)
            assert proc.poll() is None, "the watcher is still running"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    text = log_path.read_bytes().decode("utf-8", "backslashreplace")
    assert "Traceback" not in text, text[-3000:]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert sorted(by_name) == names
    from transcribe.store import readable  # the watcher's log writes a stray byte as \xNN

    logged = _lines_per_file([ln for ln in text.splitlines() if ln.startswith(("ERROR", "WARN"))],
                             folder, names, shown_as=readable)
    assert all(len(logged[n]) <= 1 for n in names), {n: logged[n] for n in names
                                                     if len(logged[n]) > 1}
    for name in names:
        assert (by_name[name]["state"] == "failed") == bool(logged[name]), (name, logged[name])
    for name, sample in good.items():
        assert by_name[name]["state"] == "done", by_name[name]
        _assert_transcribed(_transcript(watch_home, by_name[name]["id"]), sample)


def _run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    """`run_cli`, but a file name that is not UTF-8 may come back as its own bytes."""
    result = subprocess.run([sys.executable, "-m", "transcribe", *args], capture_output=True,
                            env=dict(os.environ, **env), cwd=ROOT, timeout=900)
    result.stdout = result.stdout.decode("utf-8", "surrogateescape")
    result.stderr = result.stderr.decode("utf-8", "surrogateescape")
    return result


def _assert_transcribed(transcript: dict, sample: str) -> None:
    reference = REFERENCES[sample]
    assert not transcript["truncated"] and not transcript["damaged"], transcript["file"]
    if reference["text"]:
        assert transcript["language"] == reference["language"], transcript
        assert wer(reference["text"], transcript["text"]) <= WER_BOUND, transcript["text"]
    else:
        assert transcript["no_speech"], transcript


def _lines_per_file(lines: list[str], folder: Path, names: list[str],
                    shown_as=None) -> dict[str, list[str]]:
    """Which lines name which file (a line names the one whose full path it holds)."""
    said: dict[str, list[str]] = {n: [] for n in names}
    shown = {(shown_as or _shown)(folder / n): n for n in names}
    pattern = re.compile("|".join(re.escape(s) for s in sorted(shown, key=len, reverse=True)))
    for line in lines:
        match = pattern.search(line)
        if match:
            said[shown[match.group(0)]].append(line)
    return said


def _shown(path: Path) -> str:
    """A path as it appears on stderr (Python writes a stray byte as \\udcXX there)."""
    return str(path).encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def _rows(data: Path) -> list[dict]:
    try:
        with sqlite3.connect(data / "data" / "transcribe.db") as con:
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute("SELECT * FROM jobs ORDER BY id")]
    except sqlite3.OperationalError:  # not created yet
        return []
    for row in rows:
        if isinstance(row["path"], bytes):
            row["path"] = os.fsdecode(row["path"])
    return rows


def _transcript(data: Path, job_id: int) -> dict:
    import json

    with sqlite3.connect(data / "data" / "transcribe.db") as con:
        [(blob,)] = con.execute("SELECT data FROM transcripts WHERE job_id=?", (job_id,))
    return json.loads(blob)


def _wait_until_all_settled(data: Path, count: int, proc, log_path: Path,
                            timeout: float = 900) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = _rows(data)
        if len(rows) >= count and all(r["state"] in ("done", "failed") for r in rows):
            return rows
        if proc.poll() is not None:
            raise AssertionError(f"the watcher exited with {proc.returncode}:\n"
                                 f"{log_path.read_bytes()[-4000:].decode(errors='replace')}")
        time.sleep(0.5)
    raise AssertionError(f"timed out with {len(rows)} jobs: "
                         f"{[(r['path'], r['state']) for r in rows if r['state'] not in ('done', 'failed')]}")
