"""Telegram Desktop's whole-account export ("Export Telegram data", JSON) and messages
with `date_unixtime` only: every chat, one picked with --name, one conversation file per
chat; nothing read is an error, never an empty success."""

import json
import shutil
import sqlite3
from pathlib import Path

from conftest import private_home, run_cli

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = ROOT / "sample_audio" / "chats" / "telegram-account"
# UTC+5:30 all year: a time in UTC shows 5:30 later, and no summer time moves it.
TZ = {"TZ": "Asia/Kolkata"}


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_whole_account_gives_one_conversation_per_chat(tmp_path, home):
    """Every chat with messages is a file of its own in -o DIR, its voice notes
    transcribed (the same note forwarded to a second chat: once), times from
    date_unixtime in local time; a second run transcribes nothing again."""
    mine = private_home(tmp_path / "home", home)
    env = {"TRANSCRIBE_HOME": str(mine), **TZ}
    out_dir = tmp_path / "out"
    out = run_cli("chat", str(ACCOUNT), "-o", str(out_dir), "--json", "-v", env=env)
    assert out.returncode == 0, out.stderr
    assert "1 transcribed now" in out.stderr
    assert sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")) == \
        ["Sam.transcribed.json", "Team.transcribed.json"], "no file for the empty chat"
    sam = _lines((out_dir / "Sam.transcribed.json").read_text())
    team = _lines((out_dir / "Team.transcribed.json").read_text())
    assert [(m["time"], m["sender"], m["kind"]) for m in sam] == [
        ("2024-03-12T18:44:10", "Sam", "text"), ("2024-03-12T18:45:02", "Alice", "voice")]
    assert [(m["time"], m["sender"], m["kind"]) for m in team] == [
        ("2024-03-13T14:30:00", "Sam", "system"), ("2024-03-13T14:31:00", "Alice", "voice"),
        ("2024-03-13T14:32:00", "Sam", "text")]
    assert {(m["app"], m["chat"]) for m in sam + team} == {("telegram", "Sam"),
                                                          ("telegram", "Team")}
    said = [m["transcript"]["text"] for m in (sam[1], team[1])]
    assert said[0] == said[1] and "train" in said[0].lower()

    again = run_cli("chat", str(ACCOUNT), "-o", str(out_dir), "--json", "-v", env=env)
    assert again.returncode == 0 and "0 transcribed now" in again.stderr, again.stderr
    with sqlite3.connect(mine / "data" / "transcribe.db") as con:
        assert con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1


def test_one_chat_of_an_account_by_name(tmp_path, home):
    env = {"TRANSCRIBE_HOME": str(home), **TZ}
    account = _text_only(tmp_path)
    out = run_cli("chat", str(account), "--name", "team", "--format", "txt", "--output", "-",
                  "--no-store", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "2024-03-13 14:32 Sam: On my way"
    assert "Sam: See you" not in out.stdout

    nobody = run_cli("chat", str(account), "--name", "Bob", "--no-store", env=env)
    assert nobody.returncode == 2 and len(nobody.stderr.splitlines()) == 1, nobody.stderr
    assert "Sam" in nobody.stderr and "Team" in nobody.stderr
    one_file = run_cli("chat", str(account), "--output", str(tmp_path / "x.md"), "--no-store",
                       env=env)
    assert one_file.returncode == 2 and "--name" in one_file.stderr, one_file.stderr
    assert not (tmp_path / "x.md").exists()


def _text_only(tmp_path: Path, edit=None) -> Path:
    """The account fixture without its voice notes (nothing to transcribe)."""
    account = tmp_path / "account"
    account.mkdir()
    data = json.loads((ACCOUNT / "result.json").read_text())
    for chat in data["chats"]["list"]:
        chat["messages"] = [m for m in chat["messages"] if "file" not in m]
    if edit:
        edit(data)
    (account / "result.json").write_text(json.dumps(data), encoding="utf-8")
    return account


def test_an_unreadable_message_is_a_warning_naming_it(tmp_path, home):
    def damage(data):
        data["chats"]["list"][1]["messages"][1].pop("date_unixtime")

    account = _text_only(tmp_path, damage)
    out = run_cli("chat", str(account), "--json", "--output", "-", "--no-store",
                  env={"TRANSCRIBE_HOME": str(home), **TZ})
    assert out.returncode == 0, out.stderr
    [warning] = out.stderr.splitlines()
    assert "result.json: chat 'Team': message 2 (id 3): no 'date'" in warning
    assert [m["chat"] for m in _lines(out.stdout)] == ["Sam", "Team"]


def test_a_chat_whose_every_message_was_dropped_is_an_error(tmp_path, home):
    """The other chats still come out; the exit says one was lost."""
    def damage(data):
        for m in data["chats"]["list"][1]["messages"]:
            m.pop("date_unixtime")

    account = _text_only(tmp_path, damage)
    out = run_cli("chat", str(account), "-o", str(tmp_path / "out"), "--no-store",
                  env={"TRANSCRIBE_HOME": str(home), **TZ})
    assert out.returncode == 1, out.stderr
    assert "error: " in out.stderr and "chat 'Team': no message could be read" in out.stderr
    assert (tmp_path / "out" / "Sam.transcribed.md").exists()
    assert not (tmp_path / "out" / "Team.transcribed.md").exists()


def test_date_unixtime_alone_is_read_in_local_time(tmp_path, home):
    """A one-chat result.json whose messages have no "date" (older exports, other
    exporters): every message comes out, at its UTC time shown in local time."""
    (tmp_path / "result.json").write_text(json.dumps({"name": "Sam", "messages": [
        {"id": 1, "type": "message", "date_unixtime": "1710265450", "from": "Sam",
         "text": "hi"}]}))
    out = run_cli("chat", str(tmp_path), "--format", "txt", "--output", "-", "--no-store",
                  env={"TRANSCRIBE_HOME": str(home), **TZ})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2024-03-12 23:14 Sam: hi\n"  # 17:44:10 UTC


def test_an_export_with_no_message_read_is_one_line_and_exit_1(tmp_path, home):
    """Every message dropped, from one chat's export or a whole account's: never an empty
    conversation with exit 0."""
    one = tmp_path / "one"
    one.mkdir()
    (one / "result.json").write_text(json.dumps({"name": "Sam", "messages": [
        {"id": 1, "type": "message", "from": "Sam", "text": "no date"}]}))
    account = _text_only(tmp_path, lambda data: [
        m.pop(k, None) for chat in data["chats"]["list"] for m in chat["messages"]
        for k in ("date", "date_unixtime")])
    for export in (one, account):
        out = run_cli("chat", str(export), "--output", "-", "--no-store",
                      env={"TRANSCRIBE_HOME": str(home)})
        assert out.returncode == 1, out.stderr
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("error: "), \
            out.stderr
        assert "no message could be read" in out.stderr and out.stdout == ""


def test_a_zipped_account_keeps_its_notes_in_the_data_folder(tmp_path, home):
    """Zipped (as people send an export on), the notes are unpacked where the store
    says they are, and stay there."""
    archive = shutil.make_archive(str(tmp_path / "Telegram Export"), "zip", ACCOUNT)
    mine = private_home(tmp_path / "home", home)
    out = run_cli("chat", archive, "--name", "Sam", "-o", str(tmp_path / "out"),
                  env={"TRANSCRIBE_HOME": str(mine)})
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(mine / "data" / "transcribe.db") as con:
        [(path, chat)] = con.execute("SELECT path, chat FROM jobs").fetchall()
    assert chat == "Sam" and Path(path).is_file()
    assert Path(path).is_relative_to(mine / "data" / "chats")


def test_a_round_video_message_is_said_as_a_video_note_in_both_exports():
    """Telegram's round video messages are transcribed as voice notes, and named for
    what they are: "video note", in the JSON export and in the HTML one alike."""
    from transcribe.chat_render import voice_line
    from transcribe.chats import load

    for export in ("telegram-json", "telegram-html"):
        [chat] = load(ROOT / "sample_audio" / "chats" / export)
        notes = [m for m in chat.messages if m.kind == "voice"]
        videos = [m for m in notes if m.video]
        assert [m.attachment.parent.name for m in videos] == ["round_video_messages"], export
        assert all(m.attachment.parent.name == "voice_messages"
                   for m in notes if not m.video and m.attachment), export
        assert voice_line(videos[0], "not audio", None).startswith(
            "🎤 video note could not be transcribed"), export
        assert "voice note" in voice_line(notes[0], None, None)
