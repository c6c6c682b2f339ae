"""No packet leaves the machine without consent: seen from outside, with strace.

The Python audit hook (tests/no_network.py) cannot see what native libraries do:
onnxruntime's telemetry resolved a Microsoft host from C++ on every run. strace
sees every socket call of the process and its threads, Python or not.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REFERENCES, ROOT, SAMPLES, private_home

NOTE = "PTT-20240312-WA0007.opus"
SILENT = "silence.opus"
STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed")

CALL = re.compile(r"\b(connect|sendto|sendmsg|sendmmsg)\((.*)")
PORT = re.compile(r"htons\((\d+)\)")
ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def leaks(trace: str) -> list[str]:
    """The socket calls that name an address off this machine, or DNS at all."""
    found = []
    for line in trace.splitlines():
        call = CALL.search(line)
        if not call or "sa_family=AF_INET" not in line:
            continue
        ports = [int(p) for p in PORT.findall(line)]
        hosts = [a or b for a, b in ADDRESS.findall(line)]
        if 53 in ports or any(not _loopback(h) for h in hosts):
            found.append(line.strip())
    return found


def _loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")


def traced_env(home: Path) -> dict:
    env = dict(os.environ, TRANSCRIBE_HOME=str(home))
    for name in ("ORT_DISABLE_TELEMETRY", "HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        env.pop(name, None)  # the opt-outs must come from us, not from the test's shell
    return env


def test_the_cli_sends_nothing_and_asks_no_dns_with_the_cloud_off(tmp_path, home):
    trace = tmp_path / "strace.txt"
    env = traced_env(private_home(tmp_path / "home", home))
    result = subprocess.run([STRACE, "-f", "-e", "trace=network", "-o", str(trace),
                             sys.executable, "-m", "transcribe", str(SAMPLES / NOTE)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Sam" in result.stdout
    assert leaks(trace.read_text()) == []


def test_the_watcher_sends_nothing_and_asks_no_dns_with_the_cloud_off(tmp_path, home):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    trace = tmp_path / "strace.txt"
    env = traced_env(private_home(tmp_path / "home", home))
    tracer = subprocess.Popen([STRACE, "-f", "-e", "trace=network", "-o", str(trace),
                               sys.executable, "-m", "transcribe", "watch", str(inbox), "-o",
                               str(out), "--settle", "0.2", "--poll", "0.2"],
                              stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    try:
        # Two notes, so the watcher lives on past its first VAD run (a single note and
        # an early SIGTERM let one run of four without the fix end before its DNS).
        shutil.copy(SAMPLES / NOTE, inbox / NOTE)
        shutil.copy(SAMPLES / SILENT, inbox / SILENT)
        written = _wait_for_files(out, 2, tracer, timeout=300)
        assert "Sam" in written[NOTE.rsplit(".", 1)[0]].read_text(), REFERENCES[NOTE]["text"]
    finally:
        for pid in _children(tracer.pid):
            os.kill(pid, signal.SIGTERM)
        tracer.wait(60)
    assert leaks(trace.read_text()) == []


def _wait_for_files(folder: Path, count: int, proc, timeout: float) -> dict[str, Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {p.stem: p for p in folder.rglob("*.txt")}
        if len(found) >= count:
            return found
        assert proc.poll() is None, f"the watcher under strace exited with {proc.returncode}"
        time.sleep(0.3)
    raise AssertionError(f"the watcher wrote fewer than {count} transcripts")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_folder_naming_a_hub_model_asks_nothing_of_the_hub(tmp_path, home):
    """A `.transcribe.toml` may name installed models only: `small` or an `org/repo` the
    hub would serve fail their notes in one line, with no DNS and no connection."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    for folder, model, note in (("named", "small", NOTE),
                                ("repo", "someone/whisper-large", "voicemail-8k.wav")):
        (inbox / folder).mkdir(parents=True)
        (inbox / folder / ".transcribe.toml").write_text(f'model = "{model}"\n')
        shutil.copy(SAMPLES / note, inbox / folder / note)
    trace = tmp_path / "strace.txt"
    env = traced_env(private_home(tmp_path / "home", home))
    env.pop("HF_HUB_OFFLINE")  # the user's machine: the hub is only a download away
    db = tmp_path / "home" / "data" / "transcribe.db"
    log = tmp_path / "watch.log"
    with log.open("w") as err:
        tracer = subprocess.Popen([STRACE, "-f", "-e", "trace=network", "-o", str(trace),
                                   sys.executable, "-m", "transcribe", "watch", str(inbox),
                                   "-o", str(out), "--settle", "0.2", "--poll", "0.2"],
                                  stderr=err, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while _failed(db) < 2:
            assert tracer.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    finally:
        for pid in _children(tracer.pid):
            os.kill(pid, signal.SIGTERM)
        tracer.wait(60)
    assert leaks(trace.read_text()) == []
    said = log.read_text()
    assert "'small' is not on this machine" in said, said
    assert "transcribe models pull someone/whisper-large" in said, said


def _failed(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM jobs WHERE state='failed'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
