from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# Tests never reach the model hub: every model comes from an installed package.
os.environ["HF_HUB_OFFLINE"] = "1"
for name in list(os.environ):
    if name.startswith("TRANSCRIBE_"):
        del os.environ[name]
# Nor a desktop: no notification of a test's note reaches the developer's screen
# (test_notify.py brings a session bus of its own).
os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_audio"
REFERENCES = json.loads((SAMPLES / "references.json").read_text())
SPEECH = sorted(name for name, ref in REFERENCES.items() if ref["text"])
SILENT = sorted(name for name, ref in REFERENCES.items() if not ref["text"])


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    """One TRANSCRIBE_HOME for the session, so the base model is joined once."""
    path = tmp_path_factory.mktemp("home")
    os.environ["TRANSCRIBE_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def transcriber(home):
    from transcribe import Settings, Transcriber

    return Transcriber(Settings.load())


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None,
            prefix: list[str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real command in a fresh process, as a user would."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([*(prefix or []), sys.executable, "-m", "transcribe", *args],
                          capture_output=True, text=True, env=full_env, cwd=cwd or ROOT,
                          timeout=timeout)


def run_measured(args: list[str], env: dict, work: Path, *, timeout: float = 600
                 ) -> tuple[float, str, str, int]:
    """The real command, as `run_cli` runs it: its peak RSS in MB (from wait4: its
    whole life, nothing missed between polls), stdout, stderr and exit code. Its
    output goes through files in `work`; it is killed after `timeout` s."""
    out, err = work / "stdout.txt", work / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "transcribe", *args], cwd=ROOT,
                                env=dict(os.environ, **env), stdout=stdout, stderr=stderr)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    return (usage.ru_maxrss / 1024, out.read_text(), err.read_text(),
            os.waitstatus_to_exitcode(status))


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def private_home(path: Path, shared: Path) -> Path:
    """A TRANSCRIBE_HOME of its own whose model cache is the session's (joined once)."""
    path.mkdir(parents=True, exist_ok=True)
    (shared / "cache").mkdir(parents=True, exist_ok=True)
    (path / "cache").symlink_to(shared / "cache")
    return path


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KB tmpfs (root only, as the CI runs): a disk that fills up, or is read-only."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)
