"""The systemd user unit that runs `transcribe watch` as a service.

The unit points at the `transcribe` that writes it (a venv's, pipx's, ...), so
it runs the same code and settings the user just tried, whatever the install.
Exit codes 2 (bad settings or folders) and 6 (another watcher already runs on
the store) are final: restarting every few seconds cannot fix either.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Mapping, Sequence

from .errors import EXIT_USAGE

UNIT_NAME = "transcribe-watch.service"
EXIT_ANOTHER_WATCHER = 6  # watcher.AlreadyRunning; kept here so this module stays light
FINAL_EXIT_CODES = (EXIT_USAGE, EXIT_ANOTHER_WATCHER)
# The variables that decide which settings and store the service uses.
PASSED_ENV = ("TRANSCRIBE_HOME", "HF_HUB_OFFLINE", "HF_HOME")

UNIT = """\
# systemd --user unit for `transcribe watch`, written by `transcribe watch --install-service`.
[Unit]
Description=transcribe: voice notes in watched folders to text

[Service]
Type=simple
ExecStart={exec_start}
{environment}Restart=on-failure
RestartSec=10
# 2: bad settings or folders, 6: another watcher runs on this store. Restarting
# cannot fix either; `journalctl --user -u transcribe-watch` says which it was.
RestartPreventExitStatus={final}
# The watcher requeues the note it was working on when stopped.
KillSignal=SIGTERM
TimeoutStopSec=30
Nice=10

[Install]
WantedBy=default.target
"""


def command() -> list[str]:
    """How to start this very `transcribe`: its console script, else this Python with -m."""
    script = Path(sys.argv[0])
    if script.name == "transcribe" and script.is_file() and os.access(script, os.X_OK):
        return [str(script.resolve())]
    found = shutil.which("transcribe")  # this Python's own script, not another install's
    if found and Path(found).absolute().parent == Path(sys.executable).absolute().parent:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "transcribe"]


def unit_text(watch_args: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """The unit running `transcribe watch` with `watch_args` (absolute paths)."""
    environ = os.environ if environ is None else environ
    exec_start = " ".join(_quote(a) for a in [*command(), "watch", *watch_args])
    environment = "".join(f"Environment={_quote(f'{k}={environ[k]}', dollars=False)}\n"
                          for k in PASSED_ENV if environ.get(k))
    return UNIT.format(exec_start=exec_start, environment=environment,
                       final=" ".join(map(str, FINAL_EXIT_CODES)))


def unit_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where systemd looks for the user's own units."""
    environ = os.environ if environ is None else environ
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home())
                                                     / ".config")
    return Path(config) / "systemd" / "user" / UNIT_NAME


def install(watch_args: Sequence[str]) -> Path:
    """Write the unit where `systemctl --user` finds it; return its path."""
    from .writers import write_atomic

    path = unit_path()
    write_atomic(path, unit_text(watch_args), mode=0o644)
    return path


def _quote(arg: str, dollars: bool = True) -> str:
    """One word of a unit line: `%` doubled (and `$`, which ExecStart expands), quoted
    when it has spaces or quotes."""
    arg = arg.replace("%", "%%")
    if dollars:
        arg = arg.replace("$", "$$")
    if arg and not any(c in arg for c in ' \t"\'\\;'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
