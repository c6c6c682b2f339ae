"""`transcribe watch --install-service`: a systemd user unit for the transcribe that wrote it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

UNIT = Path(".config") / "systemd" / "user" / "transcribe-watch.service"


def exec_start(unit: str) -> list[str]:
    [line] = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart=").replace("%%", "%").replace("$$", "$"))


def verify(path: Path) -> None:
    """systemd's own check: sections, keys, and that ExecStart is an executable."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                            text=True, cwd=path.parent)
    assert result.returncode == 0, result.stderr
    assert "not executable" not in result.stderr


@pytest.mark.parametrize("how", ["script", "module"])
def test_install_service_writes_a_unit_that_runs_this_transcribe(tmp_path, how):
    inbox = tmp_path / "Voice Notes"
    inbox.mkdir()
    user = tmp_path / "user"
    user.mkdir()
    env = {"HOME": str(user), "TRANSCRIBE_HOME": str(tmp_path / "home")}
    env["XDG_CONFIG_HOME"] = str(user / ".config")
    args = ["watch", "--install-service", str(inbox), "-f", "txt,srt", "--language", "de"]
    if how == "script":
        script = Path(sys.executable).parent / "transcribe"
        if not script.exists():
            pytest.skip("the console script is not installed next to this Python")
        result = subprocess.run([str(script), *args], capture_output=True, text=True,
                                env=dict(os.environ, **env), cwd=tmp_path)
    else:
        result = run_cli(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "systemctl --user enable --now transcribe-watch" in result.stdout
    unit = (user / UNIT).read_text()
    assert re.search(r"^RestartPreventExitStatus=2 6$", unit, re.M)
    assert f"Environment=TRANSCRIBE_HOME={tmp_path / 'home'}" in unit
    command = exec_start(unit)
    assert Path(command[0]).is_absolute() and os.access(command[0], os.X_OK)
    if how == "script":
        assert command[0] == str(script.resolve())
    verify(user / UNIT)

    # The unit's own command line is the watch that was asked for: run it, asking for
    # the unit once more, and the same unit comes back.
    again = subprocess.run([*command, "--print-service"], capture_output=True, text=True,
                           env=dict(os.environ, **env), cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert again.stdout == unit
    assert command[command.index("watch") + 1] == str(inbox)


def test_a_unit_for_a_missing_folder_makes_it_and_says_so(tmp_path):
    """The README's own `watch --install-service ~/VoiceNotes` on a fresh home."""
    user = tmp_path / "user"
    user.mkdir()
    env = {"HOME": str(user), "TRANSCRIBE_HOME": str(tmp_path / "home"),
           "XDG_CONFIG_HOME": str(user / ".config")}
    result = run_cli("watch", "--install-service", "~/VoiceNotes".replace("~", str(user)),
                     env=env)
    assert result.returncode == 0, result.stderr
    assert (user / "VoiceNotes").is_dir()
    assert f"created {user / 'VoiceNotes'}" in result.stderr
    assert (user / UNIT).exists()


def test_a_unit_for_a_file_instead_of_a_folder_is_refused_with_exit_2(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (tmp_path / "afile").write_text("x")
    result = run_cli("watch", "--install-service", str(tmp_path / "afile"),
                     env={"HOME": str(user), "TRANSCRIBE_HOME": str(tmp_path / "home")})
    assert result.returncode == 2 and "not a folder" in result.stderr
    assert not (user / UNIT).exists()


def test_the_contrib_unit_is_what_install_writes(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    written = run_cli("watch", "--print-service", str(inbox),
                      env={"TRANSCRIBE_HOME": str(tmp_path / "home")}).stdout
    contrib = (ROOT / "contrib" / "transcribe-watch.service").read_text()

    def settings(unit: str) -> list[str]:
        return [ln for ln in unit.splitlines() if ln and not ln.startswith(
            ("#", "ExecStart=", "Environment="))]

    assert settings(contrib) == settings(written)
