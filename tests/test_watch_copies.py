"""Notes the CLI transcribed, copied into watched folders: the stored transcript where
the folder's settings are those it was made with, a new one where they are not."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from conftest import REFERENCES, SAMPLES, run_cli
from test_watch import jobs, watcher
from test_watch import space  # noqa: F401 - a fixture
from wer import wer

from transcribe.store import Store

GERMAN = "recording-de.webm"
MILK = "New Recording 12.m4a"  # "Remember to buy milk, eggs, bread and coffee ..."


def wait_for_files(paths: list[Path], data: Path, proc, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert proc.poll() is None and time.monotonic() < deadline, \
            (data.parent / "watch.log").read_text()
        time.sleep(0.2)


def transcribed(data: Path) -> list[str]:
    """The watcher's "transcribed PATH in N s (...)" lines: each a run of the model."""
    return [line for line in (data.parent / "watch.log").read_text().splitlines()
            if "transcribed /" in line]


def test_a_copy_is_transcribed_again_only_where_its_folder_wants_another_task_or_model(space):
    inbox, out, data = space
    cli = run_cli(str(SAMPLES / GERMAN), str(SAMPLES / MILK), env={"TRANSCRIBE_HOME": str(data)})
    assert cli.returncode == 0, cli.stderr
    kept = {Path(r["path"]).name: r["text"] for r in jobs(data)}
    for folder, toml in (("same", ""), ("english", 'task = "translate"\n'),
                         ("tiny", 'model = "tiny.en"\n')):
        (inbox / folder).mkdir()
        (inbox / folder / ".transcribe.toml").write_text(toml)
    written = out / "inbox"
    with watcher(inbox, out, data) as proc:
        shutil.copy(SAMPLES / GERMAN, inbox / "same" / "de.webm")
        shutil.copy(SAMPLES / MILK, inbox / "same" / "milk.m4a")
        wait_for_files([written / "same" / "de.txt", written / "same" / "milk.txt"], data, proc)
        assert transcribed(data) == []  # the same settings: the CLI's transcripts
        assert (written / "same" / "de.txt").read_text().strip() == kept[GERMAN]
        assert (written / "same" / "milk.txt").read_text().strip() == kept[MILK]

        shutil.copy(SAMPLES / GERMAN, inbox / "english" / "de.webm")
        shutil.copy(SAMPLES / MILK, inbox / "tiny" / "milk.m4a")
        wait_for_files([written / "english" / "de.txt", written / "tiny" / "milk.txt"],
                       data, proc)
    runs = transcribed(data)
    assert len(runs) == 2, runs
    assert any("english/de.webm" in line for line in runs)
    assert any("tiny/milk.m4a" in line and "tiny.en" in line for line in runs)
    english = (written / "english" / "de.txt").read_text().strip()
    assert wer(REFERENCES[GERMAN]["text"], english) > 0.6, "English, not German"
    assert "milk" in (written / "tiny" / "milk.txt").read_text().lower()
    assert (written / "same" / "de.txt").read_text().strip() == kept[GERMAN]  # untouched

    # Started again, with one more copy where the settings are the CLI's: no model runs.
    shutil.copy(SAMPLES / GERMAN, inbox / "again.webm")
    with watcher(inbox, out, data) as proc:
        wait_for_files([written / "again.txt"], data, proc)
    assert transcribed(data) == runs
    assert (written / "again.txt").read_text().strip() == kept[GERMAN]
    rows = {Path(r["path"]).name: r for r in jobs(data)}
    assert len(jobs(data)) == 2 and "milk.m4a" in rows, rows
    store = Store.open_default(data / "data")
    try:
        german = [t.task for t in store.transcripts(rows["de.webm"]["id"])]
        milk = store.transcript(rows["milk.m4a"]["id"], "transcribe")
    finally:
        store.close()
    assert german == ["transcribe", "translate"]  # both kept: search finds either
    assert milk.model == "tiny.en"  # the newer transcript replaced the one of its task


def test_a_forced_language_the_transcript_is_not_in_wants_a_new_one(home):
    """(The German sample is heard as Latin on some CPUs, so this rule is shown on its
    own, with the transcripts it decides between.)"""
    from dataclasses import replace

    from transcribe.settings import Settings
    from transcribe.transcript import Transcript
    from transcribe.watcher import another_wanted

    german = Settings.load().with_overrides(language="de")
    latin = Transcript(file="de.webm", text="Guten Morgen", language="la", duration=4.0,
                       segments=[], engine="local", model="base")
    assert "language de" in another_wanted(latin, german)
    assert another_wanted(replace(latin, language="de"), german) is None
    assert another_wanted(replace(latin, no_speech=True, language=None), german) is None
    cloud = replace(latin, language="de", engine="cloud", model="whisper-1")
    assert another_wanted(cloud, german) is None  # it stood in for the local model
    assert "model tiny.en" in another_wanted(latin, german.with_overrides(model="tiny.en",
                                                                          language=None))
