"""`transcribe watch` takes the model options on its command line, as `transcribe` does."""

from __future__ import annotations

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
