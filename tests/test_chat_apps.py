"""Signal, Instagram, Messenger, Discord and iMessage exports (sample_audio/chats/): read
through `transcribe.chats.load` (no model), and `transcribe chat` on one of each app with
the real model."""

import json
import os
import shutil
import sqlite3
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import private_home, run_cli
from wer import wer

from transcribe import audio
from transcribe.chats import APPS, is_export, load
from transcribe.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
CHATS = ROOT / "sample_audio" / "chats"
REFS = json.loads((ROOT / "sample_audio" / "references.json").read_text())

# POSIX zone rules, so no tzdata is needed. On 2024-03-12 Berlin is UTC+1 and New York
# already on summer time, UTC-4.
BERLIN = "CET-1CEST,M3.5.0,M10.5.0/3"
NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"

PTT, TRAIN, MILK = "PTT-20240312-WA0007.opus", "audio_2024-03-12_18-45-02.ogg", \
    "New Recording 12.m4a"

# fixture: (app, chat name, [(sender, local time in Berlin, kind, reference note,
# "omitted" or None)])
CASES = {
    "signal": ("signal", "Sam", [
        ("Sam", "2024-03-12T18:40:05", "text", None),
        ("Sam", "2024-03-12T18:41:00", "system", None),
        ("Me", "2024-03-12T18:44:10", "text", None),
        ("Me", "2024-03-12T18:45:02", "voice", PTT),
        ("Sam", "2024-03-12T18:46:30", "text", None),
        ("Sam", "2024-03-12T18:47:00", "media", "omitted"),
        ("Sam", "2024-03-12T18:51:00", "text", None),
        ("Sam", "2024-03-12T18:51:00", "voice", "omitted"),
    ]),
    "messenger": ("messenger", "Zoë", [
        ("Zoë", "2024-03-12T18:40:05", "text", None),
        ("Alice Example", "2024-03-12T18:41:00", "system", None),
        ("Alice Example", "2024-03-12T18:44:10", "text", None),
        ("Alice Example", "2024-03-12T18:45:02", "voice", TRAIN),
        ("Zoë", "2024-03-12T18:46:30", "text", None),
        ("Zoë", "2024-03-12T18:47:00", "media", "omitted"),
        ("Zoë", "2024-03-12T18:48:00", "text", None),
        ("Zoë", "2024-03-12T18:51:00", "voice", "omitted"),
    ]),
    "instagram": ("instagram", "Sam", [
        ("Sam", "2024-03-12T18:40:05", "text", None),
        ("Alice Example", "2024-03-12T18:45:02", "voice", TRAIN),
        ("Sam", "2024-03-12T18:47:00", "text", None),
    ]),
    "discord": ("discord", "Sam", [
        ("Sam", "2024-03-12T18:40:05", "text", None),
        ("Alice", "2024-03-12T18:41:00", "system", None),
        ("Alice", "2024-03-12T18:44:10", "text", None),
        ("Alice", "2024-03-12T18:45:02", "voice", MILK),
        ("Sam", "2024-03-12T18:46:30", "text", None),
        ("Sam", "2024-03-12T18:47:00", "media", "omitted"),
        ("Sam", "2024-03-12T18:51:00", "voice", "omitted"),
    ]),
    "imessage-txt": ("imessage", "+15555550123", [
        ("+15555550123", "2024-03-12T18:40:05", "text", None),
        ("Me", "2024-03-12T18:44:10", "text", None),
        ("Me", "2024-03-12T18:45:02", "voice", PTT),
        ("+15555550123", "2024-03-12T18:46:30", "text", None),
        ("+15555550123", "2024-03-12T18:47:00", "media", "omitted"),
        ("+15555550123", "2024-03-12T18:50:00", "voice", MILK),
        ("Me", "2024-03-12T18:51:00", "voice", "omitted"),
    ]),
}
CASES["imessage-html"] = CASES["imessage-txt"]  # the same conversation, exported as HTML


@contextmanager
def local_zone(rule: str):
    """This process's local time zone set to `rule`, and put back after."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = rule
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def _rows(chat) -> list[tuple]:
    return [(m.sender, m.time.isoformat() if m.time else None, m.kind,
             "omitted" if m.omitted else None) for m in chat.messages]


def _expected(name: str) -> list[tuple]:
    return [(s, t, k, n if n == "omitted" else None) for s, t, k, n in CASES[name][2]]


def _zip(folder: Path, archive: Path) -> Path:
    """The folder zipped as the app (or the user) zips it: its files under its name."""
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(folder.rglob("*")):
            z.write(f, f.relative_to(folder.parent))
    return archive


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_app_export_is_read_in_order_with_senders_times_and_notes(name):
    app, chat_name, expected = CASES[name]
    with local_zone(BERLIN):
        chats = load(CHATS / name)
    assert [(c.app, c.name) for c in chats] == [(app, chat_name)]
    chat = chats[0]
    assert _rows(chat) == _expected(name)
    assert chat.problems == []
    for m, (*_, note) in zip(chat.messages, expected):
        if m.kind in ("voice", "media") and note != "omitted":
            assert m.attachment.is_file() and m.attachment.is_relative_to(CHATS / name)


@pytest.mark.parametrize("name", ["messenger", "instagram", "discord"])
def test_utc_times_are_shown_in_the_local_zone(name):
    """timestamp_ms is UTC and Discord's times carry the exporting computer's offset:
    both come out as the local time of the computer reading them."""
    with local_zone(NEW_YORK):
        chat = load(CHATS / name)[0]
    berlin = [t for _, t, _, _ in CASES[name][2]]
    assert [m.time.isoformat() for m in chat.messages] == \
        [t.replace("T18:", "T13:") for t in berlin]


def test_signal_chat_md_alone_gives_what_data_json_gives(tmp_path):
    """sigexport writes data.json only with --json: chat.md (replies' quotes, reactions,
    "(media not exported)", calls) reads the same."""
    export = shutil.copytree(CHATS / "signal", tmp_path / "signal")
    with_json = load(export)[0]
    (export / "Sam" / "data.json").unlink()
    md = load(export)[0]
    assert md.source.name == "chat.md" and with_json.source.name == "data.json"
    assert md.messages == with_json.messages
    texts = [m.text for m in md.messages]
    assert texts[4] == "Thanks.\nSee you there"  # no quote, no "(- Me: 👍 -)"
    assert texts[6] == "café?"


def test_signal_whole_output_gives_every_chat_and_one_chat_folder_its_own(tmp_path):
    export = shutil.copytree(CHATS / "signal", tmp_path / "signal-chats")
    shutil.copytree(export / "Sam", export / "Book club")
    (export / "Book club" / "data.json").unlink()
    assert [c.name for c in load(export)] == ["Book club", "Sam"]
    assert [c.name for c in load(export / "Sam")] == ["Sam"]
    assert [c.name for c in load(export / "Sam" / "chat.md")] == ["Sam"]
    zipped = load(_zip(export, tmp_path / "signal-chats.zip"), tmp_path)
    assert [c.name for c in zipped] == ["Book club", "Sam"]
    assert all(len(c.messages) == 8 for c in zipped)


def test_meta_text_is_given_back_as_written_not_as_latin1():
    with local_zone(BERLIN):
        chat = load(CHATS / "messenger")[0]
    raw = json.loads((CHATS / "messenger" / "your_facebook_activity" / "messages" / "inbox"
                      / "zoe_1234567890" / "message_2.json").read_text())
    assert raw["title"] == "Zo\u00c3\u00ab"  # what Meta writes
    assert chat.name == "Zoë"
    assert chat.messages[0].text == "Café at 7? ☕"
    assert chat.messages[4].text == "Thanks.\nSee you there 👍"
    assert chat.messages[1].text == "phone call (65 seconds)"
    assert "https://example.com/menu" in chat.messages[6].text


def test_meta_a_thread_or_its_message_1_json_gives_the_thread_of_every_page(tmp_path):
    thread = CHATS / "messenger" / "your_facebook_activity" / "messages" / "inbox" / \
        "zoe_1234567890"
    with local_zone(BERLIN):
        whole = load(CHATS / "messenger")[0]
        for path in (thread, thread / "message_1.json", thread.parent):
            chat = load(path)[0]
            assert _rows(chat) == _rows(whole), path
        alone = shutil.copytree(thread, tmp_path / "zoe")  # out of its export: the
        chat = load(alone)[0]                              # uri's tail is found in it
    assert _rows(chat) == _rows(whole)
    assert chat.messages[3].attachment == alone / "audio" / \
        "audioclip17102655020000_1234567890.mp4"


def test_meta_zip_of_the_whole_export_names_the_app(tmp_path):
    for name, app in (("messenger", "messenger"), ("instagram", "instagram")):
        archive = _zip(CHATS / name / f"your_{'facebook' if app == 'messenger' else app}"
                       "_activity", tmp_path / f"{name}.zip")
        target = tmp_path / f"{name}-unzipped"
        target.mkdir()
        chats = load(archive, target)
        assert [c.app for c in chats] == [app]
        assert any(m.kind == "voice" and not m.omitted for m in chats[0].messages)


def test_a_message_that_cannot_be_read_is_a_line_naming_it_and_the_rest_comes_out(tmp_path):
    thread = shutil.copytree(CHATS / "messenger" / "your_facebook_activity" / "messages" /
                             "inbox" / "zoe_1234567890", tmp_path / "zoe")
    page = json.loads((thread / "message_1.json").read_text())
    del page["messages"][1]["timestamp_ms"]
    (thread / "message_1.json").write_text(json.dumps(page))
    chat = load(thread)[0]
    assert chat.problems == [f"{thread / 'message_1.json'}: message 2: no 'timestamp_ms'"]
    assert len(chat.messages) == 7

    discord = shutil.copytree(CHATS / "discord", tmp_path / "discord")
    channel = next(discord.glob("*.json"))
    doc = json.loads(channel.read_text())
    doc["messages"][0]["timestamp"] = "yesterday"
    channel.write_text(json.dumps(doc))
    chat = load(discord)[0]
    assert len(chat.problems) == 1 and chat.problems[0].startswith(f"{channel}: message 1: ")
    assert len(chat.messages) == 6

    text = tmp_path / "imessage" / "+15555550123.txt"
    text.parent.mkdir()
    text.write_text("Mar 12, 2024  6:40:05 PM\n+15555550123\nhello\n\n"
                    "Foo 12, 2024  6:41:00 PM\nMe\nlost\n\n"
                    "Mar 12, 2024  6:42:00 PM You renamed the conversation to Plans\n\n")
    chat = load(text.parent)[0]
    assert chat.problems == [f"{text}:5: not a month: Foo"]
    assert [(m.sender, m.kind, m.text) for m in chat.messages] == \
        [("+15555550123", "text", "hello"),
         (None, "system", "You renamed the conversation to Plans")]


def test_an_export_that_is_not_json_is_one_error_naming_it(tmp_path):
    channel = tmp_path / "Direct Messages - Sam [1].json"
    channel.write_text('{"guild": {"id": "0"}, "channel": {}, "messages": [')
    with pytest.raises(InputError) as e:
        load(channel)
    assert e.value.path == str(channel) and "JSON" in e.value.reason


def test_imessage_html_gives_what_the_txt_gives_and_replies_come_once():
    txt, html = load(CHATS / "imessage-txt")[0], load(CHATS / "imessage-html")[0]
    assert [(m.time, m.sender, m.kind, m.text, m.omitted) for m in txt.messages] == \
        [(m.time, m.sender, m.kind, m.text, m.omitted) for m in html.messages]
    assert [m.text for m in txt.messages].count("Thanks.\nSee you there") == 1
    assert txt.messages[1].text == "Running late, I'll send a voice note"


@pytest.mark.parametrize("codec,note,reference", [
    ("opus", "5E0B5F8A-3C6B-4E0C-9B1A-2D7C8F3E6A11.caf", PTT),
    ("aac", "9C4D2E71-0F5A-4B8E-A3D6-7E1B2C9F0D44.caf", MILK)])
def test_imessage_caf_audio_messages_decode(codec, note, reference):
    """Core Audio Format, Opus (iOS 17 on) or AAC inside, decodes through PyAV as long as
    the note it was made from."""
    decoded = audio.decode(CHATS / "imessage-txt" / "attachments" / "1" / note)
    original = audio.decode(ROOT / "sample_audio" / reference)
    assert decoded.codec == codec and not decoded.truncated and not decoded.damaged
    assert abs(len(decoded.samples) - len(original.samples)) < 0.1 * audio.SAMPLE_RATE
    assert audio.is_audio_name(Path(note))  # what `transcribe` and `watch` take too


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_other_app_claims_an_export(name):
    """Each export is its own app's only: the order of APPS decides nothing for them (but
    WhatsApp's any-.txt and Telegram's any-.json come last)."""
    folder = CHATS / name
    module = {"instagram": "messenger"}.get(CASES[name][0], CASES[name][0])  # meta.APP
    claims = [app.APP for app in APPS if app.recognise(folder)]
    assert claims[0] == module
    assert set(claims) <= {module, "whatsapp", "telegram"}
    assert is_export(folder)


@pytest.mark.parametrize("name", ["telegram-json", "telegram-html", "whatsapp-ios",
                                  "whatsapp-android-24h"])
def test_the_new_apps_do_not_claim_whatsapp_or_telegram(name):
    mine = {"signal", "messenger", "discord", "imessage"}
    folder = CHATS / name
    for path in [folder, *folder.iterdir()]:
        assert [a.APP for a in APPS if a.APP in mine and a.recognise(path)] == [], path


# -- transcribe chat, with the real model ------------------------------------------------

def _jobs(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "data" / "transcribe.db") as con:
        return sorted(con.execute("SELECT chat, sender, sent_at, app FROM jobs"))


def _check_output(stdout: str, name: str) -> None:
    app, _, expected = CASES[name]
    messages = [json.loads(line) for line in stdout.splitlines()]
    assert [(m["sender"], m["time"], m["kind"]) for m in messages] == \
        [(s, t, k) for s, t, k, _ in expected]
    for m, (*_, note) in zip(messages, expected):
        assert m.get("app", app) == app
        if note == "omitted":
            assert m["omitted"] and "transcript" not in m
        elif note:
            ref = REFS[note]
            assert m["transcript"]["language"] == ref["language"]
            assert wer(ref["text"], m["transcript"]["text"]) < 0.5, m["transcript"]["text"]


@pytest.mark.parametrize("name,zipped", [("signal", True), ("messenger", True),
                                         ("discord", False)])
def test_transcribe_chat_writes_each_apps_notes_in_place_once(name, zipped, tmp_path, home):
    """Signal's output folder and Meta's export zipped (as users send and Meta gives them),
    Discord's folder: each note transcribed in its place, kept in the store under the
    chat, the sender and the app; the same export again transcribes nothing."""
    mine = private_home(tmp_path / "home", home)
    env = {"TRANSCRIBE_HOME": str(mine), "TZ": BERLIN}
    export = shutil.copytree(CHATS / name, tmp_path / name)
    if zipped:
        export = _zip(export, tmp_path / f"{name}.zip")
    out = run_cli("chat", str(export), "--format", "json", "--output", "-", env=env)
    assert out.returncode == 0, out.stderr
    _check_output(out.stdout, name)
    app, chat, expected = CASES[name]
    jobs = _jobs(mine)
    assert jobs == sorted((chat, s, t, app) for s, t, k, n in expected
                          if k == "voice" and n != "omitted")

    again = run_cli("chat", str(export), "-v", "--format", "md", "--output", "-", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 transcribed now" in again.stderr
    assert _jobs(mine) == jobs
    assert "omitted" in again.stdout or "missing" in again.stdout


def test_imessage_txt_then_html_transcribes_the_caf_notes_once(tmp_path, home):
    """The TXT export's two .caf notes (Opus and AAC) transcribed in place; the same
    conversation exported as HTML then comes from the store, word for word the same."""
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    out = run_cli("chat", str(CHATS / "imessage-txt"), "--format", "json", "--output", "-",
                  env=env)
    assert out.returncode == 0, out.stderr
    _check_output(out.stdout, "imessage-txt")
    md = {}
    for name in ("imessage-txt", "imessage-html"):
        again = run_cli("chat", str(CHATS / name), "-v", "--format", "md", "--output", "-",
                        env=env)
        assert again.returncode == 0, again.stderr
        assert "0 transcribed now" in again.stderr
        md[name] = again.stdout
    assert md["imessage-html"] == md["imessage-txt"]
    assert "milk" in md["imessage-html"].lower()


def test_a_folder_with_some_other_chat_md_is_no_signal_export(tmp_path):
    notes = tmp_path / "notes"
    (notes / "media").mkdir(parents=True)
    (notes / "chat.md").write_text("# Chat with Sam\n\n- [ ] ask about Friday\n")
    assert not is_export(notes) and not is_export(tmp_path)
    with pytest.raises(InputError):
        load(notes)


def test_discord_channel_in_parts_is_one_chat_and_channels_of_a_folder_each_one(tmp_path):
    """--partition splits a channel into "NAME [part N].json" files (part 10 after part 9);
    a folder of exported channels gives one chat each."""
    export = tmp_path / "discord"
    export.mkdir()
    doc = json.loads(next((CHATS / "discord").glob("*.json")).read_text())
    messages = doc["messages"]
    for part, chunk in ((1, messages[:2]), (2, messages[2:5]), (10, messages[5:])):
        (export / f"Direct Messages - Sam [1216000000000000000] [part {part}].json") \
            .write_text(json.dumps({**doc, "messages": chunk}))
    other = {**doc, "guild": {"id": "7", "name": "Book Club"},
             "channel": {"id": "8", "type": "GuildTextChat", "name": "general"},
             "messages": messages[:1]}
    (export / "Book Club - general [8].json").write_text(json.dumps(other))
    with local_zone(BERLIN):
        chats = load(export)
    assert sorted((c.name, len(c.messages)) for c in chats) == [("Book Club #general", 1),
                                                                ("Sam", 7)]
    sam = next(c for c in chats if c.name == "Sam")
    assert [m.time.isoformat() for m in sam.messages] == [t for _, t, _, _ in
                                                          CASES["discord"][2]]


def test_meta_a_damaged_conversation_among_many_says_why_and_the_others_come_out(tmp_path):
    export = shutil.copytree(CHATS / "messenger", tmp_path / "facebook-alice")
    inbox = export / "your_facebook_activity" / "messages" / "inbox"
    shutil.copytree(inbox / "zoe_1234567890", inbox / "bob_42")
    (inbox / "bob_42" / "message_1.json").write_text('{"messages": [')
    outside = tmp_path / "secret.json"
    outside.write_text('{"messages": []}')
    (inbox / "bob_42" / "message_2.json").unlink()
    (inbox / "bob_42" / "message_2.json").symlink_to(outside)
    chats = load(export)
    assert [(c.name, len(c.messages)) for c in chats] == [("bob_42", 0), ("Zoë", 8)]
    assert len(chats[0].problems) == 1 and "bob_42/message_1.json" in chats[0].problems[0]
    (inbox / "bob_42" / "message_1.json").write_text('{"messages": []}')
    problem = load(export)[0].problems[0]
    assert "bob_42/message_2.json" in problem and "inside the export" in problem


def test_imessage_attachments_not_copied_are_left_out_and_an_audio_tag_is_a_voice_note(
        tmp_path):
    """Without --copy-method the exporter names an attachment by its path on the Mac: not
    in the export. "Compatible" copying may turn a .caf into an .mp4: the HTML's <audio>
    says it is still a voice note (a TXT's .mp4 is a video)."""
    export = tmp_path / "imessage"
    (export / "attachments" / "2").mkdir(parents=True)
    shutil.copy(CHATS / "imessage-txt" / "attachments" / "1" /
                "5E0B5F8A-3C6B-4E0C-9B1A-2D7C8F3E6A11.caf",
                export / "attachments" / "2" / "A1.mp4")
    (export / "Sam.txt").write_text(
        "Mar 12, 2024  6:45:02 PM\nSam\n"
        "/Users/alice/Library/Messages/Attachments/4c/12/AB12/Audio Message.caf\n\n"
        "Mar 12, 2024  6:46:00 PM\nSam\nattachments/2/A1.mp4\n\n")
    chat = load(export / "Sam.txt")[0]
    assert [(m.kind, m.text, m.omitted, m.attachment) for m in chat.messages] == [
        ("voice", "Audio Message.caf", True, None),
        ("media", "A1.mp4", False, export / "attachments" / "2" / "A1.mp4")]
    (export / "Sam.txt").unlink()
    (export / "Sam.html").write_text(
        '<html>\n<head>\n<meta charset="UTF-8">\n</head>\n<body>\n<div class="message">\n'
        '<div class="received">\n<p><span class="timestamp">Mar 12, 2024  6:46:00 PM</span>\n'
        '<span class="sender">Sam</span></p>\n<hr><div class="message_part">\n'
        '<div class="attachment"><audio controls src="attachments/2/A1.mp4" '
        'type="audio/mp4" </audio></div>\n</div>\n</div>\n</div>\n</body></html>')
    chat = load(export)[0]
    assert [(m.kind, m.omitted) for m in chat.messages] == [("voice", False)]


@pytest.mark.parametrize("name,page,key,junk", [
    ("messenger", "your_facebook_activity/messages/inbox/zoe_1234567890/message_1.json",
     "participants", 7),
    ("discord", "Direct Messages - Sam [1216000000000000000].json", "channel", "Sam"),
    ("discord", "Direct Messages - Sam [1216000000000000000].json", "guild", [1])])
def test_an_export_field_of_another_type_still_gives_the_chat(name, page, key, junk, tmp_path):
    """Found by mutating the fixtures' JSON: a field of the wrong type is no crash."""
    export = shutil.copytree(CHATS / name, tmp_path / name)
    doc = json.loads((export / page).read_text())
    doc[key] = junk
    if key == "participants":
        del doc["title"]
    (export / page).write_text(json.dumps(doc))
    chat = load(export)[0]
    assert chat.name and len(chat.messages) == len(CASES[name][2])


@pytest.mark.parametrize("name,zipped", [("signal", True), ("messenger", True),
                                         ("instagram", False), ("discord", False),
                                         ("imessage-html", False)])
def test_the_tuis_import_queues_each_apps_notes_with_app_chat_sender_and_time(
        name, zipped, tmp_path):
    """What the TUI's `a` does with an export: every voice note it holds becomes a job
    with its app, chat, sender and sent time (the chat filter and `search --chat/--from`
    read these); a left-out note is none."""
    from transcribe.jobs import enqueue_chat
    from transcribe.store import Store

    app, chat, expected = CASES[name]
    export = shutil.copytree(CHATS / name, tmp_path / name)
    if zipped:
        export = _zip(export, tmp_path / f"{name}.zip")
    assert is_export(export)
    store = Store.open_default(tmp_path / "data")
    try:
        with local_zone(BERLIN):
            got, added, problems = enqueue_chat(store, export, tmp_path / "keep")
        assert (got, problems) == (chat, [])
        assert sorted((j.app, j.chat, j.sender, j.sent_at) for j in store.jobs()) == sorted(
            (app, chat, s, t) for s, t, k, n in expected if k == "voice" and n != "omitted")
        assert len(store.inbox(chat=chat)) == len(added) > 0
    finally:
        store.close()


def test_signal_export_v1s_index_md_without_seconds(tmp_path):
    """signal-export before v2 wrote index.md, its times without seconds."""
    export = shutil.copytree(CHATS / "signal", tmp_path / "signal")
    chat_md = export / "Sam" / "chat.md"
    (export / "Sam" / "data.json").unlink()
    lines = chat_md.read_text().replace(":05]", "]").replace(":02]", "]").replace(":10]", "]")
    (export / "Sam" / "index.md").write_text(lines.replace(":30]", "]").replace(":00]", "]"))
    chat_md.unlink()
    chat = load(export)[0]
    assert chat.source.name == "index.md"
    assert [(s, t[:-3], k, n) for s, t, k, n in _rows(chat)] == \
        [(s, t[:-3], k, n) for s, t, k, n in _expected("signal")]
    assert all(m.time.second == 0 for m in chat.messages)


def test_imessage_html_announcement_is_a_system_line(tmp_path):
    page = tmp_path / "Book Club - 12.html"
    page.write_text(
        '<html>\n<head>\n<meta charset="UTF-8">\n</head>\n<body>\n'
        '\n<div class ="announcement"><p><span class="timestamp">Mar 12, 2024  6:40:00 PM'
        '</span> You named the conversation <b>Book &amp; Club</b></p></div>\n'
        '<div class="message">\n<div class="received">\n<p><span class="timestamp">'
        'Mar 12, 2024  6:41:00 PM</span>\n<span class="sender">Sam</span></p>\n'
        '<hr><div class="message_part">\n<span class="bubble">hi &lt;3</span>\n</div>\n'
        '</div>\n</div>\n</body></html>')
    chat = load(page)[0]
    assert chat.name == "Book Club - 12"
    assert [(m.time.isoformat(), m.sender, m.kind, m.text) for m in chat.messages] == [
        ("2024-03-12T18:40:00", None, "system", "You named the conversation Book & Club"),
        ("2024-03-12T18:41:00", "Sam", "text", "hi <3")]


@pytest.mark.parametrize("video", ["clip.mp4", "clip.webm", "clip.MOV"])
def test_a_video_attachment_is_media_not_a_voice_note(video, tmp_path):
    export = shutil.copytree(CHATS / "discord", tmp_path / "discord")
    channel = next(export.glob("*.json"))
    doc = json.loads(channel.read_text())
    doc["messages"][3]["attachments"][0].update(fileName=video, url=video)
    (export / video).write_bytes(b"\0")
    channel.write_text(json.dumps(doc))
    assert [m.kind for m in load(export)[0].messages][3] == "media"
