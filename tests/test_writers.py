"""Every output goes through `writers.write_atomic`: it replaces regular files only.

A device, a FIFO or a terminal is written to in place; a symlink stays a symlink.
(As root, `--output /dev/null` once replaced the machine's /dev/null with a file.)
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, run_cli

from transcribe.writers import write_atomic

NOTE = "PTT-20240312-WA0007.opus"


def fake_null(folder: Path) -> Path:
    """A character device 1,3 (what /dev/null is), made in a temp folder, never /dev."""
    path = folder / "fakenull"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    return path


def assert_still_null(path: Path) -> None:
    st = os.lstat(path)
    assert stat.S_ISCHR(st.st_mode), f"{path} was replaced by a {stat.filemode(st.st_mode)} file"
    assert st.st_rdev == os.makedev(1, 3)


def test_a_device_is_written_in_place_not_replaced(tmp_path):
    null = fake_null(tmp_path)
    write_atomic(null, "hello\n")
    assert_still_null(null)
    assert [p.name for p in tmp_path.iterdir()] == ["fakenull"]  # no temporary file left


def test_a_fifo_is_written_to_its_reader(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_atomic(fifo, "through the pipe\n")
    reader.join(10)
    assert got == ["through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_to_a_file_stays_a_link_and_its_target_is_written(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "notes.txt"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_atomic(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the file's own mode is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real"]


def test_a_symlink_to_stdout_writes_to_the_stream(tmp_path):
    """A link to /proc/self/fd/1, with stdout a pipe and with stdout a file."""
    link = tmp_path / "out"
    link.symlink_to("/proc/self/fd/1")
    code = ("import sys; from pathlib import Path; from transcribe.writers import write_atomic;"
            "print('before', flush=True); write_atomic(Path(sys.argv[1]), 'the text\\n')")
    piped = subprocess.run([sys.executable, "-c", code, str(link)], capture_output=True,
                           text=True, cwd=ROOT)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "before\nthe text\n"
    assert os.readlink(link) == "/proc/self/fd/1"
    redirected = tmp_path / "redirected.txt"
    with redirected.open("w") as out:
        subprocess.run([sys.executable, "-c", code, str(link)], stdout=out, check=True, cwd=ROOT)
    assert redirected.read_text() == "before\nthe text\n"  # appended, as the shell writes


def test_new_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.txt", "x")
        os.umask(0o077)
        write_atomic(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path, "x")


def test_chat_output_onto_a_device_leaves_it_a_device(tmp_path, home):
    null = fake_null(tmp_path)
    result = run_cli("chat", str(SAMPLES / "chats" / "whatsapp-ios"), "--output", str(null))
    assert result.returncode == 0, result.stderr
    assert_still_null(null)


def test_output_dir_names_that_are_links_to_stdout_or_devices_stay_so(tmp_path, home):
    out = tmp_path / "out"
    out.mkdir()
    stem = Path(NOTE).stem
    (out / f"{stem}.txt").symlink_to("/proc/self/fd/1")
    null = fake_null(out)
    null.rename(out / f"{stem}.srt")
    result = run_cli(str(SAMPLES / NOTE), "-o", str(out), "-f", "txt,srt", "--no-store")
    assert result.returncode == 0, result.stderr
    assert os.readlink(out / f"{stem}.txt") == "/proc/self/fd/1"
    assert_still_null(out / f"{stem}.srt")
    assert "-->" in (out / f"{NOTE}.srt").read_text()  # the device's name was not ours
