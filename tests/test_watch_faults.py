"""Faults around a real watcher: a note whose decoder blows up, a name that is not UTF-8,
an output folder that refuses files, half-finished writes, a damaged store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, run_cli
from test_watch import SPEECH, by_name, jobs, settled, wait_for, watcher
from test_watch import space  # noqa: F401 - a fixture

NOTE = "voicemail-8k.wav"  # "Please call me back when you get this message."
OTHER = "New Recording 12.m4a"  # about milk

# A decoder that raises its own error (not an InputError) on some files: what a
# bit-flipped mp3 did to PyAV ("Frame does not match AudioResampler setup"). The
# real decoder may be taught to raise clean InputErrors for the damage we know, so
# the fault is injected to keep the watcher honest about the damage we don't.
POISON = """
import sys
import transcribe.audio as audio, transcribe.pipeline as pipeline, transcribe.watcher as watcher

real = audio.check_whole

def raising(marker):
    def check_whole(path, **kw):
        if marker in str(path):
            raise ValueError("Frame does not match AudioResampler setup.")
        return real(path, **kw)
    return check_whole

class Stream(audio.AudioStream):  # what the pipeline reads a note with
    def __init__(self, path, *args, **kw):
        if "poison-at-work" in str(path):
            raise ValueError("Frame does not match AudioResampler setup.")
        super().__init__(path, *args, **kw)

watcher.check_whole = raising("poison-at-intake")
pipeline.AudioStream = Stream
sys.argv[0] = "transcribe"
from transcribe.cli import run
run()
"""


@contextmanager
def poisoned_watcher(inbox: Path, out: Path, data: Path):
    log = (data.parent / "watch.log").open("a")
    env = dict(os.environ, TRANSCRIBE_HOME=str(data))
    proc = subprocess.Popen([sys.executable, "-c", POISON, "watch", str(inbox), "-o", str(out),
                             "--settle", "0.5", "--grace", "2", "--poll", "0.2"],
                            env=env, stderr=log, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        log.close()


def test_a_note_whose_decoder_blows_up_is_one_failure_and_the_watcher_goes_on(space):
    inbox, out, data = space
    shutil.copy(SAMPLES / NOTE, inbox / "poison-at-intake.wav")
    shutil.copy(SAMPLES / SPEECH[0], inbox / "poison-at-work.opus")
    shutil.copy(SAMPLES / OTHER, inbox / "good.m4a")
    for start in range(2):  # and again at the next start: it must not die on them then
        with poisoned_watcher(inbox, out, data) as proc:
            rows = by_name(wait_for(lambda rows: settled(3)(rows) and all(
                r["state"] != "pending" for r in rows), data, proc=proc))
            time.sleep(1)
            assert proc.poll() is None
    log = (data.parent / "watch.log").read_text()
    assert "Traceback" not in log
    assert rows["good.m4a"]["state"] == "done" and "milk" in rows["good.m4a"]["text"]
    for name in ("poison-at-intake.wav", "poison-at-work.opus"):
        assert rows[name]["state"] == "failed", rows[name]
        assert "ValueError" in rows[name]["error"]
    assert rows["poison-at-work.opus"]["attempts"] == 3  # the note's own fault: it counts
    assert (out / "inbox" / "good.txt").exists()
    assert not (out / "inbox" / "poison-at-work.txt").exists()


NOT_UTF8 = os.fsdecode(b"nota_\xe9.wav")  # Latin-1 on an old share: not valid UTF-8


def test_a_file_name_that_is_not_utf8_is_transcribed_stored_and_shown(space):
    inbox, out, data = space
    env = {"TRANSCRIBE_HOME": str(data)}
    note = inbox.parent / NOT_UTF8
    shutil.copy(SAMPLES / NOTE, note)
    result = run_cli(str(note), env=env)
    assert result.returncode == 0, result.stderr
    assert "call me back" in result.stdout
    found = run_cli("search", "call", env=env)
    assert found.returncode == 0, found.stderr
    assert "nota_\\xe9.wav" in found.stdout
    found = run_cli("search", "--json", "call", env=env)
    assert found.returncode == 0, found.stderr
    assert os.fsencode(json.loads(found.stdout)["file"]) == os.fsencode(note)

    shutil.copy(SAMPLES / OTHER, inbox / NOT_UTF8.replace(".wav", ".m4a"))
    with watcher(inbox, out, data) as proc:
        rows = wait_for(lambda rows: len(rows) == 2 and all(r["state"] == "done" for r in rows),
                        data, proc=proc)
    paths = sorted(os.fsencode(r["path"]) for r in rows)
    assert paths == sorted([os.fsencode(note), os.fsencode(inbox / NOT_UTF8.replace(
        ".wav", ".m4a"))])
    txt = out / "inbox" / os.fsdecode(b"nota_\xe9.txt")
    assert "milk" in txt.read_text()
    status = run_cli("status", "--all", env=env)
    assert status.returncode == 0, status.stderr
    assert "nota_\\xe9.m4a" in status.stdout


def _no_override_caps() -> list[str]:
    """Root writes anywhere; without these capabilities it obeys permissions like a user."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to drop the override capabilities")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_a_read_only_output_folder_keeps_the_note_done_and_gets_its_files_later(space):
    inbox, out, data = space
    (out / "inbox").mkdir(parents=True)
    (out / "inbox").chmod(0o555)
    shutil.copy(SAMPLES / NOTE, inbox / NOTE)
    log = (data.parent / "watch.log").open("a")
    proc = subprocess.Popen([*_no_override_caps(), sys.executable, "-m", "transcribe", "watch",
                             str(inbox), "-o", str(out), "--settle", "0.5", "--poll", "0.2"],
                            env=dict(os.environ, TRANSCRIBE_HOME=str(data)), stderr=log,
                            cwd=ROOT)
    try:
        [row] = wait_for(lambda rows: rows and rows[0]["state"] in ("done", "failed"), data,
                         proc=proc)
        assert row["state"] == "done" and row["attempts"] == 1
        time.sleep(5)  # a few rounds of retrying the folder
        assert proc.poll() is None
        text = (data.parent / "watch.log").read_text()
        assert text.count("cannot write transcripts there (Permission denied)") == 1, text
        assert str(out / "inbox") in text
        assert not (out / "inbox" / "voicemail-8k.txt").exists()
        (out / "inbox").chmod(0o755)
        deadline = time.monotonic() + 60
        while not (out / "inbox" / "voicemail-8k.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "inbox" / "voicemail-8k.txt").read_text().strip() == row["text"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert by_name(jobs(data))[NOTE]["state"] == "done"
    assert "Traceback" not in (data.parent / "watch.log").read_text()


def test_a_full_output_disk_keeps_the_note_done_and_gets_its_files_when_there_is_room(space):
    """A 1 MiB tmpfs as the output folder, filled up, in a mount namespace of its own."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare to mount a small tmpfs")
    inbox, out, data = space
    out.mkdir()
    shutil.copy(SAMPLES / NOTE, inbox / NOTE)
    script = (f"mount -t tmpfs -o size=1m tmpfs '{out}' && "
              f"(dd if=/dev/zero of='{out}/filler' bs=4k 2>/dev/null; true) && "
              f"exec {sys.executable} -m transcribe watch '{inbox}' -o '{out}' "
              "--settle 0.5 --poll 0.2")
    log = (data.parent / "watch.log").open("a")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                            env=dict(os.environ, TRANSCRIBE_HOME=str(data)), stderr=log,
                            cwd=ROOT)
    inside = Path(f"/proc/{proc.pid}/root") / str(out).lstrip("/")  # the tmpfs, as it sees it
    try:
        [row] = wait_for(lambda rows: rows and rows[0]["state"] in ("done", "failed"), data,
                         proc=proc)
        assert row["state"] == "done" and row["attempts"] == 1
        time.sleep(3)
        assert proc.poll() is None
        text = (data.parent / "watch.log").read_text()
        assert text.count("cannot write transcripts there (No space left on device)") == 1, text
        assert not [p for p in (inside / "inbox").iterdir() if p.name.endswith(".tmp")]
        (inside / "filler").unlink()
        deadline = time.monotonic() + 60
        txt = inside / "inbox" / "voicemail-8k.txt"
        while not txt.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert txt.read_text().strip() == row["text"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert "Traceback" not in (data.parent / "watch.log").read_text()


# A kill -9 at one exact point of writing a transcript file, once (the marker file says
# it happened): during its fsync (the temporary file is left), or just after its rename.
KILL_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
import transcribe.writers as writers

marker = Path(os.environ["KILL_MARKER"])
where = os.environ["KILL_AT"]
real_fsync, real_write = os.fsync, writers.write_atomic

def die_once():
    if not marker.exists():
        marker.write_text(where)
        os.kill(os.getpid(), signal.SIGKILL)

def fsync(fd):
    real_fsync(fd)
    if where == "fsync" and os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp") \\
            and ".txt." in os.readlink(f"/proc/self/fd/{fd}"):
        die_once()

def write_atomic(path, text):
    real_write(path, text)
    if where == "rename" and str(path).endswith(".txt"):
        die_once()

os.fsync = fsync
writers.write_atomic = write_atomic
sys.argv[0] = "transcribe"
from transcribe.cli import run
run()
"""


@pytest.mark.parametrize("kill_at", ["fsync", "rename"])
def test_a_kill_while_writing_a_transcript_leaves_one_file_and_no_temporary(space, kill_at):
    inbox, out, data = space
    shutil.copy(SAMPLES / NOTE, inbox / "note.wav")
    env = dict(os.environ, TRANSCRIBE_HOME=str(data), KILL_AT=kill_at,
               KILL_MARKER=str(data.parent / "killed"))
    with (data.parent / "watch.log").open("a") as log:
        first = subprocess.run([sys.executable, "-c", KILL_WHILE_WRITING, "watch", str(inbox),
                                "-o", str(out), "--settle", "0.5", "--poll", "0.2"],
                               env=env, stderr=log, cwd=ROOT, timeout=300)
    assert first.returncode == -signal.SIGKILL, (data.parent / "watch.log").read_text()
    if kill_at == "fsync":
        assert [p.name for p in (out / "inbox").glob(".note.txt.*.tmp")]
    with watcher(inbox, out, data) as proc:
        wait_for(lambda rows: rows and rows[0]["state"] == "done", data, proc=proc)
        deadline = time.monotonic() + 60
        while (not (out / "inbox" / "note.txt").exists() or list(out.rglob("*.tmp"))) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
    [row] = jobs(data)
    names = sorted(p.name for p in (out / "inbox").iterdir())
    assert names == [".transcribe-outputs.json", "note.txt"], names
    assert (out / "inbox" / "note.txt").read_text().strip() == row["text"]
    assert "call me back" in row["text"]
    manifest = json.loads((out / "inbox" / ".transcribe-outputs.json").read_text())
    assert manifest == {"note.txt": str(inbox / "note.wav")}


def _damage(db: Path, how: str) -> None:
    if how == "garbage":
        db.write_bytes(os.urandom(8192))
    elif how == "truncated":
        whole = db.read_bytes()
        db.write_bytes(whole[:len(whole) // 2])
    else:
        db.unlink()
        db.mkdir()


@pytest.mark.parametrize("how", ["truncated", "garbage", "folder"])
def test_a_damaged_store_is_named_and_the_watcher_starts_a_new_one(space, how):
    inbox, out, data = space
    env = {"TRANSCRIBE_HOME": str(data)}
    first = run_cli(str(SAMPLES / OTHER), env=env)
    assert first.returncode == 0, first.stderr
    db = data / "data" / "transcribe.db"
    _damage(db, how)
    for command in (["status"], ["search", "milk"]):
        result = run_cli(*command, env=env)
        assert result.returncode == 1, result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
        assert f"{db}: the job store is damaged" in result.stderr
        assert "mv " in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    cli = run_cli(str(SAMPLES / NOTE), env=env)
    assert cli.returncode == 0 and "call me back" in cli.stdout
    assert "transcribed, but not kept in the store" in cli.stderr
    shutil.copy(SAMPLES / NOTE, inbox / NOTE)
    with watcher(inbox, out, data) as proc:
        deadline = time.monotonic() + 60
        while not list((data / "data").glob("transcribe.db.corrupt-*")):
            assert proc.poll() is None and time.monotonic() < deadline, \
                (data.parent / "watch.log").read_text()
            time.sleep(0.1)
        [row] = wait_for(lambda rows: rows and rows[0]["state"] == "done", data, proc=proc)
    log = (data.parent / "watch.log").read_text()
    assert "Traceback" not in log
    assert "the job store is damaged" in log and "moved it aside" in log
    [aside] = (data / "data").glob("transcribe.db.corrupt-*")
    assert aside.is_dir() if how == "folder" else aside.is_file()
    assert (out / "inbox" / "voicemail-8k.txt").read_text().strip() == row["text"]
    status = run_cli("status", "--all", env=env)
    assert status.returncode == 0 and "done: 1" in status.stdout


def test_a_note_the_cli_transcribed_gets_its_files_in_a_watched_folder_without_the_model(space):
    inbox, out, data = space
    env = {"TRANSCRIBE_HOME": str(data)}
    first = run_cli(str(SAMPLES / OTHER), str(SAMPLES / NOTE), env=env)
    assert first.returncode == 0, first.stderr
    before = {r["path"]: r for r in jobs(data)}
    (inbox / "voice").mkdir()
    (inbox / "voice" / ".transcribe.toml").write_text('formats = "txt,srt"\n')
    shutil.copy(SAMPLES / OTHER, inbox / "milk.m4a")
    shutil.copy(SAMPLES / NOTE, inbox / "voice" / "call.wav")
    with watcher(inbox, out, data) as proc:
        deadline = time.monotonic() + 120
        wanted = [out / "inbox" / "milk.txt", out / "inbox" / "voice" / "call.txt",
                  out / "inbox" / "voice" / "call.srt"]
        while not all(p.exists() for p in wanted):
            assert proc.poll() is None and time.monotonic() < deadline, \
                (data.parent / "watch.log").read_text()
            time.sleep(0.2)
    rows = jobs(data)
    assert len(rows) == 2
    for row in rows:  # the CLI's jobs, untouched: no second transcription
        assert row["updated_at"] == before[row["path"]]["updated_at"]
        assert row["attempts"] == before[row["path"]]["attempts"]
    texts = {Path(r["path"]).name: r["text"] for r in rows}
    assert (out / "inbox" / "milk.txt").read_text().strip() == texts[OTHER]
    assert (out / "inbox" / "voice" / "call.txt").read_text().strip() == texts[NOTE]
    assert "call me back" in (out / "inbox" / "voice" / "call.srt").read_text()
    log = (data.parent / "watch.log").read_text()
    assert "same audio as" in log and "transcribed /" not in log


def test_a_folder_setting_no_note_can_use_fails_its_notes_once_with_the_reason(space):
    """The folder's settings fail a note before its own work begins (attempts count from
    there): it must fail once with the reason, not be retried forever, one line each poll."""
    inbox, out, data = space
    (inbox / ".transcribe.toml").write_text("beam_size = 0\n")
    shutil.copy(SAMPLES / NOTE, inbox / NOTE)
    with watcher(inbox, out, data) as proc:
        [row] = wait_for(lambda rows: rows and rows[0]["state"] == "failed", data, proc=proc)
        time.sleep(2)
        assert proc.poll() is None
    assert row["attempts"] == 1 and "beam_size" in row["error"]
    log = (data.parent / "watch.log").read_text()
    assert log.count("failed ") == 1, log


def test_a_temp_looking_name_and_a_manifest_that_is_no_table_stop_nothing(space):
    """`.x.txt.<20 digits>.abc.tmp` (no pid is that large: nobody's write, left alone) and
    a manifest holding `123` in the output folder, at every start."""
    inbox, out, data = space
    (out / "inbox").mkdir(parents=True)
    stranger = out / "inbox" / ".x.txt.99999999999999999999.abc.tmp"
    stranger.write_text("not ours\n")
    (out / "inbox" / ".transcribe-outputs.json").write_text("123")
    shutil.copy(SAMPLES / NOTE, inbox / NOTE)
    for start in range(2):
        with watcher(inbox, out, data) as proc:
            [row] = wait_for(lambda rows: rows and rows[0]["state"] == "done", data, proc=proc)
            deadline = time.monotonic() + 60
            while not (out / "inbox" / "voicemail-8k.txt").exists():
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (data.parent / "watch.log").read_text()
                time.sleep(0.2)
        assert proc.returncode in (0, -signal.SIGTERM), (data.parent / "watch.log").read_text()
        (out / "inbox" / ".transcribe-outputs.json").write_text("123")
    assert stranger.read_text() == "not ours\n"
    assert (out / "inbox" / "voicemail-8k.txt").read_text().strip() == row["text"]
    assert "Traceback" not in (data.parent / "watch.log").read_text()


def test_a_watched_folder_deleted_and_made_again_is_watched_again_at_once(space):
    """Its notifications went with the old folder; the rescan (300 s) is far off."""
    inbox, out, data = space
    with watcher(inbox, out, data) as proc:
        shutil.copy(SAMPLES / NOTE, inbox / NOTE)
        wait_for(lambda rows: [r["state"] for r in rows] == ["done"], data, proc=proc)
        shutil.rmtree(inbox)
        time.sleep(3)
        inbox.mkdir()
        time.sleep(3)
        shutil.copy(SAMPLES / OTHER, inbox / OTHER)  # dropped after the folder came back
        rows = by_name(wait_for(settled(2), data, timeout=120, proc=proc))
    assert rows[OTHER]["state"] == "done"
    said = (data.parent / "watch.log").read_text()
    assert "the watched folder is gone" in said and "made again; watching it anew" in said


def test_many_copies_save_their_folders_manifest_once_not_once_a_file(space):
    """40 copies of one note: one transcription, 40 transcript files, and the output
    folder's manifest saved (written whole, fsynced, renamed into place) a few times, not
    40 (20,000 copies took 16 minutes of outputs saving it per file). Counted by strace."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    inbox, out, data = space
    for i in range(40):
        shutil.copy(SAMPLES / NOTE, inbox / f"copy-{i:02d}.wav")
    trace = data.parent / "strace.txt"
    log = (data.parent / "watch.log").open("a")
    proc = subprocess.Popen([strace, "-f", "-e", "trace=rename,renameat,renameat2", "-o",
                             str(trace), sys.executable, "-m", "transcribe", "watch",
                             str(inbox), "-o", str(out), "--settle", "0.5", "--poll", "0.2"],
                            env=dict(os.environ, TRANSCRIBE_HOME=str(data)), stderr=log,
                            cwd=ROOT)
    try:
        deadline = time.monotonic() + 240
        while len(list((out / "inbox").glob("copy-*.txt"))) < 40:
            assert proc.poll() is None and time.monotonic() < deadline, \
                (data.parent / "watch.log").read_text()
            time.sleep(0.5)
    finally:
        for pid in [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                    .read_text().split()] if proc.poll() is None else []:
            os.kill(pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
    saves = [line for line in trace.read_text().splitlines()
             if ".transcribe-outputs.json\"" in line and "= 0" in line]
    assert [r["state"] for r in jobs(data)] == ["done"]
    assert 1 <= len(saves) <= 4, saves


def test_a_note_lost_to_an_overflowed_notification_queue_is_found_within_seconds(space):
    """The kernel's queue holds 16,384 events; past that it drops them, and watchfiles does
    not pass on the overflow. The watcher is stopped (SIGSTOP: nothing reads the queue)
    while 12,000 files are made, then a note: the note's events are dropped. A burst that
    big is followed by a walk, so the note is found in seconds, not at the 300 s rescan."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    inbox, out, data = space
    with watcher(inbox, out, data) as proc:
        shutil.copy(SAMPLES / NOTE, inbox / NOTE)
        wait_for(lambda rows: [r["state"] for r in rows] == ["done"], data, proc=proc)
        time.sleep(1)  # idle, waiting on notifications
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            for i in range(limit // 2 + 4000):  # two events each (made, closed): an overflow
                (inbox / f"clutter-{i}.txt").touch()
            shutil.copy(SAMPLES / OTHER, inbox / OTHER)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        started = time.monotonic()
        rows = by_name(wait_for(settled(2), data, timeout=120, proc=proc))
        found_after = time.monotonic() - started
    assert rows[OTHER]["state"] == "done"
    assert found_after < 100, f"found after {found_after:.0f} s: at the rescan, not after the burst"
    assert "walking the folders" in (data.parent / "watch.log").read_text()
