"""kill -9 a real watcher at random moments over a backlog: no note is lost, failed or doubled."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
import wave
from pathlib import Path

import numpy as np
from conftest import SAMPLES
from test_watch import SPEECH, jobs, watcher
from test_watch import space  # noqa: F401 - a fixture

NOTES = 10
KILLS = 12
SEED = 20240312


def make_backlog(inbox: Path) -> list[str]:
    """Ten distinct notes of about 25 s: the speech samples one after the other, starting
    with a different one, and different lengths of silence after them."""
    from transcribe.audio import decode

    speech = [decode(SAMPLES / sample).samples for sample in SPEECH]
    names = []
    for i in range(NOTES):
        k = i % len(speech)
        samples = np.concatenate([*speech[k:], *speech[:k],
                                  np.zeros(4000 * (i + 1), dtype=np.float32)])
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
        name = f"note-{i:02d}.wav"
        with wave.open(str(inbox / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(pcm.tobytes())
        names.append(name)
    return names


def running(data: Path, proc) -> dict | None:
    """The job this watcher process has taken, if any: its model may still be loading."""
    db = data / "data" / "transcribe.db"
    try:
        with sqlite3.connect(db) as con:
            con.row_factory = sqlite3.Row
            row = con.execute("SELECT * FROM jobs WHERE state='running' AND pid=?",
                              (proc.pid,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return dict(row) if row else None


def running_started(data: Path, proc) -> dict | None:
    """The job whose own work (decode, transcribe) has begun, if any (any running job, for
    a store that does not tell when a job's work began)."""
    row = running(data, proc)
    return None if row is None or row.get("started", "unknown") is None else row


def own_work(data: Path, proc, phase: str) -> dict | None:
    """The note whose own work a kill now would interrupt. A kill meant for the model's
    load counts only where the store says the note's work had begun after all."""
    row = running(data, proc)
    if phase == "load":
        return row if row and row.get("started") else None
    return running_started(data, proc)


def done_count(data: Path) -> int:
    return sum(r["state"] == "done" for r in jobs(data))


def wait_until(predicate, proc, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_random_kill_9s_over_a_backlog_lose_nothing_and_double_nothing(space):
    inbox, out, data = space
    names = make_backlog(inbox)
    rng = random.Random(SEED)
    landed, tally = [], {}
    for _ in range(KILLS):
        if done_count(data) == NOTES:
            break
        phase = rng.choice(["load", "load", "decode", "output"])
        with watcher(inbox, out, data) as proc:
            if phase == "load":  # a note is taken, the model is (most likely) loading
                wait_until(lambda: running(data, proc) is not None, proc, 90)
                time.sleep(rng.uniform(0.0, 0.5))
            elif phase == "decode":  # a note's own work has begun
                wait_until(lambda: running_started(data, proc) is not None, proc, 90)
                time.sleep(rng.uniform(0.0, 1.5))
            else:  # a note was just stored: its files are being written
                before = done_count(data)
                wait_until(lambda: done_count(data) > before, proc, 90)
                time.sleep(rng.uniform(0.0, 0.05))
            victim = own_work(data, proc, phase)
            # Three crashes in one note's own work give it up, by design (a note that
            # crashes the process each time); random kills must not make that happen.
            if victim and tally.get(victim["id"], 0) >= 2:
                wait_until(lambda: (running_started(data, proc) or {}).get("id") != victim["id"],
                           proc, 90)
                victim = own_work(data, proc, phase)
            assert proc.poll() is None, (data.parent / "watch.log").read_text()
            proc.kill()
            proc.wait()
        if victim:
            tally[victim["id"]] = tally.get(victim["id"], 0) + 1
        landed.append((phase, victim["path"] if victim else None))
    with watcher(inbox, out, data) as proc:
        finished = lambda: (len(jobs(data)) == NOTES  # noqa: E731
                            and all(r["state"] in ("done", "failed") for r in jobs(data)))
        assert wait_until(finished, proc, 600), (data.parent / "watch.log").read_text()
        time.sleep(1)  # the last note's files follow its `done`
    rows = jobs(data)
    log = (data.parent / "watch.log").read_text()
    assert len(landed) >= 10, landed
    assert any(v is None for _, v in landed) and any(v for _, v in landed), landed
    assert sorted(Path(r["path"]).name for r in rows) == names
    assert all(r["state"] == "done" for r in rows), [(r["path"], r["state"], r["error"])
                                                     for r in rows]
    assert "Traceback" not in log
    folder = out / "inbox"
    print("kills landed (phase, note at work):", landed)
    txts = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert txts == sorted(Path(n).stem + ".txt" for n in names), txts
    for row in rows:
        assert (folder / (Path(row["path"]).stem + ".txt")).read_text().strip() == row["text"]
    manifest = json.loads((folder / ".transcribe-outputs.json").read_text())
    assert sorted(manifest) == txts
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".tmp", ".lock"))]
    assert not leftovers, leftovers


def test_kills_while_the_model_loads_cost_a_note_no_attempt(space):
    """Three kill -9s, each as soon as the note is taken (the model is still loading), used
    to give the note up as `failed ... interrupted`."""
    inbox, out, data = space
    shutil.copy(SAMPLES / SPEECH[0], inbox / SPEECH[0])
    for _ in range(3):
        with watcher(inbox, out, data) as proc:
            assert wait_until(lambda: running(data, proc) is not None, proc, 120)
            proc.kill()
            proc.wait()
    with watcher(inbox, out, data) as proc:
        assert wait_until(lambda: jobs(data)[0]["state"] in ("done", "failed"), proc, 300)
    [row] = jobs(data)
    assert row["state"] == "done", (row["state"], row["error"])
    # (the service's preload may finish the model before a kill lands: that kill is the
    # note's own, so it may show as one more attempt, never as a note given up)
    assert row["attempts"] <= 2
    assert (out / "inbox" / (Path(SPEECH[0]).stem + ".txt")).read_text().strip() == row["text"]
