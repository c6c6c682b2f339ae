"""`transcribe watch` takes the model options on its command line, as `transcribe` does."""

from __future__ import annotations

import json
import shutil

from conftest import REFERENCES, SAMPLES, private_home, run_cli
from test_service import exec_start
from test_watch import settled, wait_for, watcher
from wer import wer

from transcribe.store import Store

GERMAN = "recording-de.webm"


def test_task_and_language_flags_reach_the_watcher(tmp_path, home):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    data = private_home(tmp_path / "home", home)
    shutil.copy(SAMPLES / GERMAN, inbox / GERMAN)
    with watcher(inbox, out, data, "--task", "translate", "--language", "de") as proc:
        [row] = wait_for(settled(1), data, proc=proc)
    assert row["state"] == "done", row["error"]
    store = Store.open_default(data / "data")
    try:
        made = store.transcript(row["id"], "translate")
    finally:
        store.close()
    assert made.language == "de" and made.language_probability == 1
    assert wer(REFERENCES[GERMAN]["text"], made.text) > 0.6, "English, not German"
    assert (out / "inbox" / "recording-de.txt").read_text().strip() == made.text


def test_prompt_and_hotwords_flags_are_taken_and_kept_in_the_service(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    result = run_cli("watch", "--print-service", str(inbox), "--hotwords", "Siobhan Ó Dálaigh",
                     "--initial-prompt", "Notes from Siobhan.", "--task", "translate",
                     env={"TRANSCRIBE_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    command = exec_start(result.stdout)
    for flag, value in (("--hotwords", "Siobhan Ó Dálaigh"),
                        ("--initial-prompt", "Notes from Siobhan."), ("--task", "translate")):
        assert command[command.index(flag) + 1] == value


def test_engine_flags_reach_the_watcher_and_its_service(tmp_path, home):
    """--threads, --beam-size and --languages, as the CLI takes them; the CLI's own
    default threads are served by a watcher that runs with --threads 1."""
    from test_watch import _service_ready

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    data = private_home(tmp_path / "home", home)
    flags = ["--threads", "1", "--beam-size", "2", "--languages", "en,fr"]
    with watcher(inbox, out, data, *flags) as proc:
        _service_ready(data, proc)
        shutil.copy(SAMPLES / GERMAN, inbox / GERMAN)
        [row] = wait_for(settled(1), data, proc=proc)
        handed = run_cli("-v", "--no-store", str(SAMPLES / "voicemail-8k.wav"),
                         env={"TRANSCRIBE_HOME": str(data)}, timeout=180)
    assert "as int8, 1 threads" in (data.parent / "watch.log").read_text()
    assert row["state"] == "done", row["error"]
    assert json.loads(row["data"])["language"] in ("en", "fr"), "German was not among them"
    assert handed.returncode == 0, handed.stderr
    assert "transcribed by the running service" in handed.stderr, handed.stderr
    printed = run_cli("watch", "--print-service", str(inbox), *flags,
                      env={"TRANSCRIBE_HOME": str(tmp_path / "home")})
    command = exec_start(printed.stdout)
    for flag, value in zip(flags[::2], flags[1::2]):
        assert command[command.index(flag) + 1] == value
