"""Where `transcribe chat` writes (issue 26): an output of another export is never
overwritten, a folder of several exports is refused with their list, -o DIR and --json
do what `chat --help` says. Text-only exports: nothing is transcribed here."""

import json
import shutil
from pathlib import Path

from conftest import ROOT, run_cli

CHATS = ROOT / "sample_audio" / "chats"


def _sam_exports(parent: Path) -> list[Path]:
    """Three exports of a chat named Sam, from WhatsApp and Telegram (JSON and HTML)."""
    whatsapp = parent / "whatsapp"
    whatsapp.mkdir(parents=True)
    (whatsapp / "WhatsApp Chat with Sam.txt").write_text("12/03/2024, 18:44 - Sam: from "
                                                         "WhatsApp\n", encoding="utf-8")
    telegram = parent / "telegram-json"
    telegram.mkdir()
    (telegram / "result.json").write_text(json.dumps({"name": "Sam", "messages": [
        {"id": 1, "type": "message", "date": "2024-03-12T18:44:10", "from": "Sam",
         "text": "from Telegram JSON"}]}))
    html = parent / "telegram-html"
    shutil.copytree(CHATS / "telegram-html", html, ignore=shutil.ignore_patterns("*_messages"))
    return [whatsapp, telegram, html]


def test_three_chats_of_one_name_into_one_folder_are_three_files(tmp_path, home):
    parent = tmp_path / "Downloads"
    exports = _sam_exports(parent)
    env = {"TRANSCRIBE_HOME": str(home)}
    for export in [*exports, exports[0]]:  # the first again: its own file, written again
        out = run_cli("chat", str(export), "--no-store", env=env)
        assert out.returncode == 0, out.stderr
    written = sorted(parent.glob("*.transcribed.md"))
    assert len(written) == 3, [p.name for p in written]
    texts = "".join(p.read_text() for p in written)
    assert texts.count("from WhatsApp") == 1 and texts.count("from Telegram JSON") == 1
    assert texts.count("See you tomorrow?") == 1
    assert (parent / "Sam.transcribed.md").read_text().count("from WhatsApp") == 1


def test_a_folder_of_several_exports_is_refused_with_their_list(tmp_path, home):
    parent = tmp_path / "Downloads"
    _sam_exports(parent)
    out = run_cli("chat", str(parent), "--no-store", env={"TRANSCRIBE_HOME": str(home)})
    assert out.returncode == 1 and len(out.stderr.splitlines()) == 1, out.stderr
    for name in ("whatsapp", "telegram-json", "telegram-html"):
        assert name in out.stderr
    assert not list(parent.rglob("*.transcribed.*"))


def test_output_dir_and_json_are_honoured(tmp_path, home):
    [whatsapp, *_] = _sam_exports(tmp_path / "exports")
    out_dir = tmp_path / "new" / "folder"
    out = run_cli("chat", str(whatsapp), "-o", str(out_dir), "--json", "--no-store",
                  env={"TRANSCRIBE_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    [written] = out_dir.glob("*.transcribed.json")
    [message] = [json.loads(line) for line in written.read_text().splitlines()]
    assert (message["app"], message["chat"], message["text"]) == ("whatsapp", "Sam",
                                                                  "from WhatsApp")
    assert not list((tmp_path / "exports").glob("*.transcribed.*")), "not beside the export"


def test_a_note_kept_before_gets_the_chats_sent_time(tmp_path, home):
    """Queued first on its own (the file's time), then named by a chat's import: it gains
    the chat, its sender and the time the chat says it was sent (the TUI's way in)."""
    from transcribe.jobs import enqueue, enqueue_chat
    from transcribe.store import Store

    export = tmp_path / "export"
    shutil.copytree(CHATS / "whatsapp-android-24h", export)
    store = Store.open_default(tmp_path / "data")
    try:
        job, _ = enqueue(store, export / "PTT-20240312-WA0007.opus")
        assert job.sent_at != "2024-03-13T18:45:00"
        enqueue_chat(store, export, tmp_path / "data" / "chats")
        job = store.job(job.id)
    finally:
        store.close()
    assert (job.chat, job.sender, job.sent_at, job.app) == ("Sam", "Alice",
                                                            "2024-03-13T18:45:00", "whatsapp")
