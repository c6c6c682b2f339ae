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
        shutil.copy(SAMPLES / NOTE, inbox / NOTE)
        written = _wait_for_file(out, tracer, timeout=300)
        assert "Sam" in written.read_text(), REFERENCES[NOTE]["text"]
    finally:
        for pid in _children(tracer.pid):
            os.kill(pid, signal.SIGTERM)
        tracer.wait(60)
    assert leaks(trace.read_text()) == []


def _wait_for_file(folder: Path, proc, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in folder.rglob("*.txt") if p.stat().st_size]
        if found:
            return found[0]
        assert proc.poll() is None, f"the watcher under strace exited with {proc.returncode}"
        time.sleep(0.3)
    raise AssertionError("the watcher wrote no transcript")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
