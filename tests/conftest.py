from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests never reach the model hub: every model comes from an installed package.
os.environ["HF_HUB_OFFLINE"] = "1"
for name in list(os.environ):
    if name.startswith("TRANSCRIBE_"):
        del os.environ[name]

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


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def private_home(path: Path, shared: Path) -> Path:
    """A TRANSCRIBE_HOME of its own whose model cache is the session's (joined once)."""
    path.mkdir(parents=True, exist_ok=True)
    (shared / "cache").mkdir(parents=True, exist_ok=True)
    (path / "cache").symlink_to(shared / "cache")
    return path
