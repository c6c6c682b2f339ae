"""Where change notifications do not arrive: a mount laid over a watched folder (the
rescan finds its notes) and a FUSE mount (detected, and polled at its own slower pace).
A real `transcribe watch` process over real mounts; they need root (tmpfs) and bindfs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, private_home
from test_watch import by_name, wait_for, watcher

from transcribe.changes import mount_type, needs_polling

NOTE, QUIET, NOISE = "voicemail-8k.wav", "silence.opus", "room-noise.ogg"


@pytest.fixture
def space(tmp_path, home):
    """A watched folder, an output folder and a store of their own (as in test_watch)."""
    inbox, out, data = tmp_path / "inbox", tmp_path / "out", tmp_path / "home"
    inbox.mkdir()
    return inbox, out, private_home(data, home)


def _mount(*command: str) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(command)}: {result.stderr.strip()})")


@contextmanager
def mounted(*command: str):
    """A real mount (the last argument is its mount point), taken away again at the end."""
    _mount(*command)
    try:
        yield Path(command[-1])
    finally:
        subprocess.run(["umount", "-l", command[-1]], capture_output=True, check=False)


def logged(data: Path, text: str, proc, timeout: float = 60) -> str:
    """The watcher's log once `text` is in it."""
    log = data.parent / "watch.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        written = log.read_text() if log.exists() else ""
        if text in written:
            return written
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the watcher's log:\n{log.read_text()}")


def _done(name: str):
    return lambda rows: by_name(rows).get(name, {}).get("state") in ("done", "failed")


def _note_behind_a_mount(space, rescan: str) -> tuple[Path, dict]:
    """A note written into a tmpfs mounted over a watched subfolder after the watcher set its
    watches: the kernel tells nobody (the watch is on the folder beneath the mount). A
    second note, written in the watched folder after it, is the clock: once it is done, the
    first would have been found by anything but a walk."""
    inbox, out, data = space
    (inbox / "sub").mkdir()
    shutil.copy(SAMPLES / QUIET, inbox / "before.opus")
    with watcher(inbox, out, data, "--poll", "3600", "--rescan", rescan) as proc:
        wait_for(_done("before.opus"), data, proc=proc)  # the start-up walk is over
        with mounted("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(inbox / "sub")):
            shutil.copy(SAMPLES / NOTE, inbox / "sub" / "missed.wav")
            time.sleep(1.0)  # twice the settle time
            shutil.copy(SAMPLES / NOISE, inbox / "after.ogg")
            rows = wait_for(_done("after.ogg"), data, proc=proc)
            if rescan != "3600":
                rows = wait_for(_done("missed.wav"), data, proc=proc, timeout=90)
    return inbox, by_name(rows)


def test_a_note_no_notification_told_of_is_found_by_the_rescan(space):
    _, rows = _note_behind_a_mount(space, rescan="1")
    assert rows["missed.wav"]["state"] == "done", rows["missed.wav"]["error"]
    assert "call me back" in rows["missed.wav"]["text"].lower()
    assert rows["after.ogg"]["state"] == "done"


def test_without_the_rescan_that_note_is_missed(space):
    """The other half of the test above: it is the rescan that finds the note."""
    _, rows = _note_behind_a_mount(space, rescan="3600")
    assert rows["after.ogg"]["state"] == "done"
    assert "missed.wav" not in rows


@pytest.fixture
def fuse_folder(tmp_path):
    """A bindfs (FUSE) mount of a folder: what is written to the folder beneath it, as by
    another machine to a network share, reaches the mount but no notification does."""
    beneath, mount = tmp_path / "beneath", tmp_path / "phone"
    beneath.mkdir()
    mount.mkdir()
    with mounted("bindfs", str(beneath), str(mount)):
        yield beneath, mount


def test_a_fuse_mount_is_polled_at_its_own_pace_and_its_notes_are_found(space, fuse_folder):
    _, out, data = space
    beneath, mount = fuse_folder
    assert needs_polling(mount) and not needs_polling(beneath)
    shutil.copy(SAMPLES / QUIET, beneath / "before.opus")
    # a local poll that never comes and no rescan: only the mount's own polls find notes
    with watcher(mount, out, data, "--poll", "3600", "--rescan", "3600",
                 "--poll-remote", "0.5") as proc:
        log = logged(data, "polled every", proc)
        wait_for(_done("before.opus"), data, proc=proc)
        shutil.copy(SAMPLES / NOTE, beneath / "later.wav")
        rows = by_name(wait_for(_done("later.wav"), data, proc=proc, timeout=90))
    assert f"{mount}: polled every 0.5 s (a network or FUSE mount" in log
    assert rows["later.wav"]["state"] == "done", rows["later.wav"]["error"]
    assert "call me back" in rows["later.wav"]["text"].lower()
    assert Path(rows["later.wav"]["path"]) == mount / "later.wav"


def test_the_default_paces_are_slower_for_a_mount_than_for_local_polling(tmp_path, home,
                                                                         fuse_folder):
    """No flags but --no-notify: the local folder is walked every second, the FUSE mount
    every ten. No note, so no model is loaded."""
    _, mount = fuse_folder
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = tmp_path / "home"
    log = tmp_path / "watch.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "transcribe", "watch", str(inbox),
                                 str(mount), "-o", str(tmp_path / "out"), "--no-notify"],
                                env=dict(os.environ, TRANSCRIBE_HOME=str(data)),
                                stderr=stderr, cwd=ROOT)
        try:
            said = logged(data, f"{mount}: polled every", proc)
            said = logged(data, f"{inbox}: polled every", proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert f"{inbox}: polled every 1 s\n" in said
    assert f"{mount}: polled every 10 s (a network or FUSE mount" in said


# Lines of /proc/self/mountinfo as Linux writes them: the bindfs line is this machine's,
# the others' shapes are those of proc(5) with the options real mounts show.
MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
25 22 0:22 / /tmp rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=8145040k,inode64
42 25 0:39 / /tmp/ws-fuse rw,nosuid,nodev,relatime - fuse /tmp/ws-src rw,user_id=0,group_id=0,default_permissions,allow_other
48 22 0:43 / /mnt/nas rw,relatime shared:27 - nfs4 nas.local:/export/voice rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=192.168.1.20,local_lock=none,addr=192.168.1.10
49 48 0:44 / /mnt/nas/local rw,relatime shared:28 - ext4 /dev/sdb1 rw
104 22 0:52 / /mnt/share rw,relatime shared:57 - cifs //server/voice rw,vers=3.1.1,cache=strict,username=me,uid=1000,noforceuid,gid=1000,noforcegid,addr=192.168.1.10,file_mode=0755,dir_mode=0755
120 22 0:55 / /home/me/My\\040Phone rw,nosuid,nodev,relatime shared:61 - fuse.sshfs me@phone:/sdcard/Recordings rw,user_id=1000,group_id=1000
86 22 0:57 / /mnt/c rw,noatime - 9p C:\\134 rw,dirsync,aname=drvfs;path=C:\\;uid=1000,gid=1000,symlinkroot=/mnt/,mmap,access=client,msize=262144,trans=virtio
87 22 0:58 / /mnt/d rw,noatime - drvfs D:\\134 rw,case=off
130 22 0:60 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c
"""


@pytest.mark.parametrize("path, kind, remote", [
    ("/home/me/notes", "ext4", False),
    ("/tmp/x", "tmpfs", False),
    ("/tmp/ws-fuse/Recordings", "fuse", True),
    ("/mnt/nas/voice/2024", "nfs4", True),
    ("/mnt/nas/local/voice", "ext4", False),  # a local disk mounted inside the share
    ("/mnt/share", "cifs", True),
    ("/home/me/My Phone/Recordings", "fuse.sshfs", True),
    ("/home/me/My", "ext4", False),
    ("/mnt/c/Users/me/Downloads", "9p", True),
    ("/mnt/d/Voice", "drvfs", True),
    ("/var/lib/docker/overlay2/abc/merged/notes", "overlay", False),
])
def test_network_and_fuse_mounts_are_told_from_local_ones(tmp_path, path, kind, remote):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    assert mount_type(Path(path), mountinfo) == kind
    assert needs_polling(Path(path), mountinfo) is remote
