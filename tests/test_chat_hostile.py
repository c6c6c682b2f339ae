"""Crafted chat exports (issue 27): each is one line or a warning and a documented exit,
in bounded time and memory, writing nothing outside where it should; the Markdown
written is safe to open. Parsing only: no voice note is transcribed here but one."""

import json
import os
import shutil
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from conftest import ROOT, private_home, run_cli

CHATS = ROOT / "sample_audio" / "chats"
NOTE = CHATS / "whatsapp-android-24h" / "PTT-20240312-WA0007.opus"
TEXT = "WhatsApp Chat with Sam.txt"


def _chat(home: Path, *args: str, **kw):
    return run_cli("chat", *args, "--no-store", env={"TRANSCRIBE_HOME": str(home)}, **kw)


def _messages(out) -> list[dict]:
    return [json.loads(line) for line in out.stdout.splitlines()]


# -- 1: a zip named "...zip" --------------------------------------------------------

def test_a_zip_named_dots_unpacks_only_into_a_folder_of_the_data_folder(tmp_path):
    """`Path("...zip").stem` is "..": the TUI's import unpacked such a zip into the data
    folder itself, and its transcribe.db and cloud-uploads.jsonl replaced the store's."""
    from transcribe.jobs import enqueue_chat
    from transcribe.store import Store

    data = tmp_path / "data"
    archive = tmp_path / "...zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(TEXT, "12/03/2024, 18:44 - Sam: PTT-20240312-WA0007.opus (file attached)\n")
        z.write(NOTE, NOTE.name)
        z.writestr("transcribe.db", b"not a database")
        z.writestr("cloud-uploads.jsonl", b'{"forged": true}\n')
    store = Store.open_default(data)
    try:
        name, added, problems = enqueue_chat(store, archive, data / "chats")
        [job] = store.jobs()
    finally:
        store.close()
    assert (name, len(added), problems) == ("Sam", 1, [])
    assert not (data / "cloud-uploads.jsonl").exists()
    assert sqlite3.connect(data / "transcribe.db").execute(
        "SELECT count(*) FROM jobs").fetchone() == (1,)
    [folder] = (data / "chats").iterdir()
    assert len(folder.name) == 16 and int(folder.name, 16) >= 0, "named by the SHA-256"
    assert Path(job.path) == folder / NOTE.name and Path(job.path).read_bytes() == \
        NOTE.read_bytes()


# -- 6: pages that never end, quadratic parsing, zip bombs ------------------------------

def _telegram_html(folder: Path) -> Path:
    shutil.copytree(CHATS / "telegram-html", folder)
    return folder


def test_a_page_linked_to_dev_zero_or_a_fifo_is_a_warning(tmp_path, home):
    """messages2.html as a link to /dev/zero (7.9 GB read in 15 s) or a FIFO (read
    forever): the page is not read, the rest of the chat comes out."""
    export = _telegram_html(tmp_path / "ChatExport")
    (export / "messages2.html").unlink()
    (export / "messages2.html").symlink_to("/dev/zero")
    os.mkfifo(export / "messages3.html")
    out = _chat(home, str(export), "--format", "txt", "--output", "-", timeout=60)
    assert out.returncode == 0, out.stderr
    assert "messages2.html: not a regular file" in out.stderr
    assert "messages3.html: not a regular file" in out.stderr
    assert "Sam: See you tomorrow?" in out.stdout


@pytest.mark.parametrize("name", ["result.json", TEXT])
def test_a_chat_text_linked_from_outside_the_export_is_not_read(name, tmp_path, home):
    secret = tmp_path / "private"
    secret.write_text(json.dumps({"name": "x", "messages": [
        {"date": "2024-03-12T18:44:10", "from": "Me", "text": "my secret"}]})
        if name == "result.json" else "12/03/2024, 18:44 - Me: my secret\n")
    export = tmp_path / "ChatExport"
    export.mkdir()
    (export / name).symlink_to(secret)
    out = _chat(home, str(export), "--output", "-")
    assert out.returncode == 1 and "secret" not in out.stdout + out.stderr, out.stderr
    assert len(out.stderr.splitlines()) == 1 and "not a regular file inside the export" \
        in out.stderr


def _best_of(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def _linear(make, small: int, factor: int = 10) -> float:
    """How much longer `make(n * factor)`'s parse takes than `make(n)`'s: about `factor`
    when linear, factor² when quadratic. Best of three each (the machine is shared)."""
    from transcribe import chats

    def parse(path):
        return lambda: chats.load(path)

    a, b = make(small), make(small * factor)
    return _best_of(3, parse(b)) / max(_best_of(3, parse(a)), 1e-4)


def test_continuation_lines_parse_in_linear_time(tmp_path):
    """A message of many lines: each added to the text so far took 14 s for 100,000."""
    def make(n: int) -> Path:
        folder = tmp_path / f"wa{n}"
        folder.mkdir()
        (folder / TEXT).write_text("12/03/2024, 18:44 - Sam: start\n" + "more words\n" * n)
        return folder

    assert _linear(make, 20_000) < 25  # here: 10 after the fix, 45 before


@pytest.mark.parametrize("shape", ["nested", "stray-end-tags", "unclosed-comments"])
def test_telegram_html_of_nested_or_stray_tags_parses_in_linear_time(shape, tmp_path):
    def make(n: int) -> Path:
        folder = tmp_path / f"{shape}{n}"
        folder.mkdir()
        inner = {"nested": '<div class="x">' * n, "stray-end-tags": '<div class="x">' * n
                 + "</span>" * n, "unclosed-comments": "<!-- x><![CDATA[ y>" * n}[shape]
        (folder / "messages.html").write_text(
            '<div class="history"><div class="message default clearfix" id="message1">'
            '<div class="body"><div class="pull_right date details" '
            'title="12.03.2024 18:44:10">18:44</div><div class="from_name">Sam</div>'
            f'<div class="text">hi{inner}</div></div></div></div>')
        return folder

    assert _linear(make, 4_000) < 25  # here: 11-12; before, nested: over 240 s


def test_a_zip_bomb_is_not_unpacked(tmp_path):
    """Only what is read is unpacked (chat texts, voice notes), and not a member that
    would unpack to over 100 times its packed size: a photo is an empty file of its
    name, a bomb is left out with a warning, the chat still comes out."""
    from transcribe import chats

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(TEXT, "12/03/2024, 18:44 - Sam: PTT-20240312-WA0001.opus (file attached)\n"
                         "12/03/2024, 18:45 - Sam: IMG-20240312-WA0002.jpg (file attached)\n")
        z.writestr("PTT-20240312-WA0001.opus", b"\0" * (40 << 20))  # 40 MB: 40 kB packed
        z.writestr("IMG-20240312-WA0002.jpg", b"\0" * (40 << 20))
    (tmp_path / "unpacked").mkdir()
    [chat] = chats.load(archive, tmp_path / "unpacked")
    unpacked = sum(p.stat().st_size for p in (tmp_path / "unpacked").rglob("*") if p.is_file())
    assert unpacked < 1 << 20
    assert any("PTT-20240312-WA0001.opus" in p and "zip bomb" in p for p in chat.problems)
    voice, photo = chat.messages
    assert (voice.kind, voice.omitted) == ("voice", True)
    assert (photo.kind, photo.omitted) == ("media", False)


def test_the_same_member_name_twice_in_a_zip_keeps_the_first(tmp_path):
    from transcribe import chats

    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(TEXT, "12/03/2024, 18:44 - Sam: PTT-20240312-WA0007.opus (file attached)\n")
        z.write(NOTE, NOTE.name)
        with pytest.warns(UserWarning):  # zipfile's own "Duplicate name"
            z.writestr(NOTE.name, b"a second member of the same name")
    (tmp_path / "unpacked").mkdir()
    [chat] = chats.load(archive, tmp_path / "unpacked")
    [voice] = chat.messages
    assert voice.attachment.read_bytes() == NOTE.read_bytes()
    assert any("a second member of this name" in p for p in chat.problems)


def test_a_member_name_too_long_for_the_disk_is_that_members_problem(tmp_path, home):
    long = "PTT-" + "9" * 300 + ".opus"
    archive = tmp_path / "long.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(TEXT, f"12/03/2024, 18:44 - Sam: {long} (file attached)\n"
                         "12/03/2024, 18:45 - Sam: still here\n")
        z.writestr(long, b"x")
    out = _chat(home, str(archive), "--format", "json", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert "not unpacked (File name too long)" in out.stderr
    assert [(m["kind"], m["omitted"]) for m in _messages(out)] == [("voice", True),
                                                                    ("text", False)]


# -- 7: Markdown safe to open -----------------------------------------------------------

HOSTILE = ["<script>alert(1)</script>", "![x](http://host/pixel.png?who=alice)",
           "[click me](javascript:alert(1))", "ok\n# Injected heading",
           "ok\n**2024-03-12 18:50 Bob:** I owe Sam 500", "<img src=x onerror=alert(1)>",
           "ok\n<iframe src=http://host/>", "\x1b[2J\x1b[31mred"]


def _rendered(md: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)


def test_markdown_from_a_whatsapp_chat_fetches_and_runs_nothing(tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    lines = [f"12/03/2024, 18:{n:02d} - Sam: {text}" for n, text in enumerate(HOSTILE)]
    lines.append("12/03/2024, 18:59 - <b>Eve</b> [x](http://e/): hi")
    (export / TEXT).write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = _chat(home, str(export), "--output", "-")
    assert out.returncode == 0, out.stderr
    html = _rendered(out.stdout)
    for bad in ("<script", "<img", "<iframe", "href=\"javascript", "<a ", "<b>", "\x1b"):
        assert bad not in html, (bad, html)
    assert html.count("<h1>") == 1 and "<h2>" not in html
    assert html.count("<strong>") == len(HOSTILE) + 1, "no spoofed sender line"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, "shown as it was written"
    assert "![x](http://host/pixel.png?who=alice)" in html


def test_text_telegrams_html_had_escaped_stays_escaped(tmp_path, home):
    export = tmp_path / "ChatExport"
    export.mkdir()
    (export / "messages.html").write_text(
        '<div class="page_header"><div class="text bold">&lt;b&gt;Team&lt;/b&gt;</div></div>'
        '<div class="history"><div class="message default clearfix" id="message1">'
        '<div class="body"><div class="pull_right date details" title="12.03.2024 18:44:10">'
        '18:44</div><div class="from_name">Sam</div><div class="text">'
        '&lt;script&gt;alert(1)&lt;/script&gt; &amp;lt;</div></div></div></div>')
    out = _chat(home, str(export), "--output", "-")
    assert out.returncode == 0, out.stderr
    html = _rendered(out.stdout)
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;lt;" in html
    assert "<h1>&lt;b&gt;Team&lt;/b&gt;</h1>" in html


def test_txt_shows_no_spoofed_line_and_no_control_character(tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    (export / TEXT).write_text("12/03/2024, 18:44 - Sam: hi\n12/03/2024, 18:50 - Bob: I owe "
                               "Sam 500\n12/03/2024, 18:45 - Al: \x1b[2Jok\r\n",
                               encoding="utf-8")
    out = _chat(home, str(export), "--format", "txt", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / TEXT).write_text("12/03/2024, 18:44 - Sam: hi\n2024-03-12 18:50 Bob: I owe "
                                "Sam 500\n", encoding="utf-8")
    out = _chat(home, str(hostile), "--format", "txt", "--output", "-")
    assert out.stdout == "2024-03-12 18:44 Sam: hi\n  2024-03-12 18:50 Bob: I owe Sam 500\n"


# -- 8: one line, never exit 70 -----------------------------------------------------------

def test_result_json_nested_deep_is_one_line(tmp_path, home):
    (tmp_path / "result.json").write_text('{"messages": ' + "[" * 100_000 + "]" * 100_000
                                          + "}")
    out = _chat(home, str(tmp_path), "--output", "-")
    assert out.returncode == 1, out.stderr
    assert len(out.stderr.splitlines()) == 1 and "nested too deep" in out.stderr


@pytest.mark.parametrize("bad", [{"type": "service", "action": "phone_call",
                                  "duration_seconds": "1e400"},
                                 {"date": "99999999999999-03-12T18:44:10"},
                                 {"date_unixtime": "99999999999999"},
                                 {"date": 99999999999999}])
def test_a_number_out_of_range_is_a_warning_for_that_message(bad, tmp_path, home):
    message = {"id": 7, "type": "message", "date": "2024-03-12T18:44:10", "from": "Sam",
               "text": "x", **bad}
    if "date_unixtime" in bad:
        message.pop("date")
    text = json.dumps({"name": "Sam", "messages": [message, {
        "id": 8, "type": "message", "date": "2024-03-12T18:45:00", "from": "Al",
        "text": "still here"}]}).replace('"1e400"', "1e400")
    (tmp_path / "result.json").write_text(text)
    out = _chat(home, str(tmp_path), "--format", "json", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert "message 1 (id 7)" in out.stderr and len(out.stderr.splitlines()) == 1
    assert [m["text"] for m in _messages(out)] == ["still here"]


@pytest.mark.parametrize("bad", [{"from": ["Bob"]}, {"type": "service", "text": "",
                                                    "action": {"x": 1}}])
def test_a_name_or_text_of_another_type_is_a_warning_for_that_message(bad, tmp_path, home):
    (tmp_path / "result.json").write_text(json.dumps({"name": "Sam", "messages": [
        {"id": 7, "type": "message", "date": "2024-03-12T18:44:10", "from": "Sam",
         "text": "x", **bad},
        {"id": 8, "type": "message", "date": "2024-03-12T18:45:00", "from": "Al",
         "text": "still here"}]}))
    for fmt in ("md", "json"):
        out = _chat(home, str(tmp_path), "--format", fmt, "--output", "-")
        assert out.returncode == 0, out.stderr
        assert "message 1 (id 7): a sender or text that is not a string" in out.stderr
        assert "still here" in out.stdout and "Bob" not in out.stdout


def test_a_note_removed_while_chat_runs_keeps_what_was_done(tmp_path, home, monkeypatch):
    """Removed after it was transcribed (the user tidying up): its transcript is kept in
    the store and in the conversation, and the conversation is written (it was exit 70,
    and nothing written). The removal is timed by wrapping the real transcriber."""
    import argparse

    from transcribe import chat_render, pipeline
    from transcribe.settings import Settings

    export = tmp_path / "chat"
    export.mkdir()
    shutil.copy(NOTE, export)
    (export / TEXT).write_text("12/03/2024, 18:44 - Sam: PTT-20240312-WA0007.opus (file "
                               "attached)\n12/03/2024, 18:45 - Sam: hi\n", encoding="utf-8")
    real = pipeline.Transcriber.transcribe

    def transcribe_then_remove(self, path, **kw):
        transcript = real(self, path, **kw)
        Path(path).unlink()
        return transcript

    monkeypatch.setattr(pipeline.Transcriber, "transcribe", transcribe_then_remove)
    monkeypatch.setenv("TRANSCRIBE_HOME", str(private_home(tmp_path / "home", home)))
    settings = Settings.load()
    args = argparse.Namespace(export=export, name=None, since=None, output=str(
        tmp_path / "out.md"), output_dir=None, chat_format="md", engine="auto")

    class Quiet:
        tty = quiet = True

        def warning(self, message):
            pass

        info = error = warning

    assert chat_render.run_chat(args, settings, Quiet()) == 0
    assert "meeting" in (tmp_path / "out.md").read_text().lower()
    with sqlite3.connect(settings.paths.data_dir / "transcribe.db") as con:
        assert con.execute("SELECT state, chat FROM jobs").fetchall() == [("done", "Sam")]


# -- 9: WhatsApp lines with a bad date ----------------------------------------------------

def test_a_line_with_a_bad_date_takes_its_next_lines_with_it(tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    (export / TEXT).write_text("12/03/2024, 18:44 - Sam: hi\n"
                               "31/02/2024, 18:45 - Eve: not Sam's\n"
                               "and neither is this\n"
                               "12/03/0000, 18:46 - Eve: year zero\n"
                               "12/03/2024, 18:47 - Al: ok\n", encoding="utf-8")
    out = _chat(home, str(export), "--format", "json", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert [(m["sender"], m["text"]) for m in _messages(out)] == [("Sam", "hi"), ("Al", "ok")]
    assert f"{TEXT}:2: bad date" in out.stderr and f"{TEXT}:4: bad date" in out.stderr


def test_a_whatsapp_chat_whose_every_line_is_bad_exits_1(tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    (export / TEXT).write_text("31/02/2024, 18:45 - Eve: x\n12/03/0000, 18:46 - Eve: y\n")
    out = _chat(home, str(export), "--output", "-")
    assert out.returncode == 1 and out.stdout == "", out.stderr
    assert len(out.stderr.splitlines()) == 1 and "no message could be read" in out.stderr


# -- 13: smaller ---------------------------------------------------------------------------

def test_a_title_of_64_emoji_is_a_file_name_that_fits(tmp_path, home):
    export = tmp_path / "ChatExport"
    export.mkdir()
    (export / "result.json").write_text(json.dumps({"name": "😀" * 64, "messages": [
        {"date": "2024-03-12T18:44:10", "from": "Sam", "text": "hi"}]}))
    out = _chat(home, str(export))
    assert out.returncode == 0, out.stderr
    [written] = tmp_path.glob("*.transcribed.md")
    assert len(written.name.encode()) <= 255 and "hi" in written.read_text()


def test_a_latin1_chat_text_is_read_and_said(tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    (export / TEXT).write_bytes("12/03/2024, 18:44 - José: À bientôt, ça va?\n"
                                .encode("latin-1"))
    out = _chat(home, str(export), "--format", "txt", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2024-03-12 18:44 José: À bientôt, ça va?\n"
    assert "not UTF-8" in out.stderr and "Latin-1" in out.stderr


# -- round three: the other apps' exports, field by field ------------------------------

def _copy_export(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(CHATS / name, tmp_path / name))


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _render_all(chats) -> None:
    from transcribe.chat_render import render
    for chat in chats:
        for fmt in ("md", "txt", "json"):
            render(chat, chat.messages, {}, fmt)


def test_a_field_of_another_type_or_out_of_range_is_that_messages_warning(tmp_path):
    """Found by a field fuzz of each app's JSON: a Discord "content" of 5 reached the
    renderer (exit 70), "9999-12-31T23:59:59-12:00" and Meta's timestamp_ms or
    call_duration of 1e400 overflowed (exit 70: the whole chat lost), and a Signal
    sender of {} reached the store. Each is now its message's warning; the rest comes
    out, and every message's sender and text are strings."""
    from transcribe.chats import load

    discord = _copy_export(tmp_path, "discord")
    [page] = discord.glob("*.json")

    def crafted_discord(data):
        data["messages"][0]["content"] = 5
        data["messages"][2]["timestamp"] = "9999-12-31T23:59:59-12:00"
    _edit_json(page, crafted_discord)

    meta = _copy_export(tmp_path, "messenger")
    [page1] = meta.rglob("message_1.json")

    def crafted_meta(data):
        data["messages"][0]["timestamp_ms"] = float("inf")
        data["messages"][1]["call_duration"] = float("inf")
    _edit_json(page1, crafted_meta)

    signal = _copy_export(tmp_path, "signal")
    lines = (signal / "Sam" / "data.json").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["sender"] = {"name": "Sam"}
    (signal / "Sam" / "data.json").write_text("\n".join([json.dumps(first), *lines[1:]]),
                                              encoding="utf-8")
    for export, dropped in ((discord, 2), (meta, 2), (signal, 1)):
        [chat] = load(export)
        assert len(chat.problems) == dropped, (export, chat.problems)
        assert chat.messages and all(isinstance(m.text, str) and
                                     isinstance(m.sender, (str, type(None)))
                                     for m in chat.messages)
        _render_all([chat])


def _meta_two_pages(tmp_path: Path) -> Path:
    thread = tmp_path / "messages" / "inbox" / "zoe_1"
    thread.mkdir(parents=True)
    for n, (ms, text) in enumerate(((1710265590000, "newer"), (1710265500000, "older")), 1):
        (thread / f"message_{n}.json").write_text(json.dumps({
            "participants": [{"name": "Zoe"}], "title": "Zoe",
            "messages": [{"sender_name": "Zoe", "timestamp_ms": ms, "content": text}]}))
    return thread


def _telegram_two_pages(tmp_path: Path) -> Path:
    export = _copy_export(tmp_path, "telegram-html")
    for page in ("messages.html", "messages2.html"):  # its notes out: no model needed
        text = (export / page).read_text(encoding="utf-8")
        (export / page).write_text(text.replace("voice_messages/", "gone/").replace(
            "round_video_messages/", "gone/"), encoding="utf-8")
    return export


@pytest.mark.parametrize("case", ["meta page 2", "meta page 2 beside page 1",
                                  "telegram page 2", "signal chat.md", "discord part 2"])
def test_output_onto_another_page_of_the_export_is_refused(case, tmp_path, home):
    """`--output thread/message_2.json` (and Telegram's messages2.html, a Discord
    channel's "[part 2].json", Signal's chat.md beside the data.json read) overwrote a
    page of the user's export with the conversation: only the first page was checked."""
    if case.startswith("meta page 2"):
        export = _meta_two_pages(tmp_path)
        victim = export / "message_2.json"
        if case.endswith("page 1"):  # the chat's first page given: its others are read
            export = export / "message_1.json"
    elif case == "telegram page 2":
        export = _telegram_two_pages(tmp_path)
        victim = export / "messages2.html"
    elif case == "signal chat.md":
        export = _copy_export(tmp_path, "signal") / "Sam"
        shutil.rmtree(export / "media")
        victim = export / "chat.md"
    else:
        export = tmp_path / "discord"
        export.mkdir()
        [page] = (CHATS / "discord").glob("*.json")
        data = json.loads(page.read_text(encoding="utf-8"))
        for n in (1, 2):
            part = dict(data, messages=[m for m in data["messages"] if not m["attachments"]])
            (export / f"Direct Messages - Sam [1] [part {n}].json").write_text(
                json.dumps(part), encoding="utf-8")
        victim = export / "Direct Messages - Sam [1] [part 2].json"
    before = victim.read_bytes()
    out = _chat(home, str(export), "--output", str(victim))
    assert out.returncode == 2, out.stderr
    assert str(victim) in out.stderr and "Traceback" not in out.stderr
    assert victim.read_bytes() == before
    folder = export if export.is_dir() else export.parent
    again = _chat(home, str(export), "--output", str(folder / "mine.transcribed.md"))
    assert again.returncode == 0, again.stderr
    assert (folder / "mine.transcribed.md").is_file()


@pytest.mark.parametrize("app", ["signal links", "imessage reactions"])
def test_signal_links_and_imessage_reactions_parse_in_linear_time(app, tmp_path):
    """A Signal message of "[](" repeated (60 kB took 11 s, each "[" scanning the rest of
    the message for its ")"), an iMessage reaction line of "x(" repeated (each "("
    scanning the rest of the line for a ")")."""
    def make(n: int) -> Path:
        folder = tmp_path / f"{app}{n}"
        if app == "signal links":
            (folder / "Sam").mkdir(parents=True)
            (folder / "Sam" / "chat.md").write_text(
                "[2024-03-12 18:40:05] Sam: hi\n\n[2024-03-12 18:41:00] Sam: "
                + "[](" * n + "\n")
        else:
            folder.mkdir()
            (folder / "+15555550123.txt").write_text(
                "Mar 12, 2024  6:40:05 PM\n+15555550123\nhi\nReactions:\n"
                + "x(" * n + "\n")
        return folder

    assert _linear(make, 2_000) < 25  # here: about 10 after the fix; 60-100 before


@pytest.mark.parametrize("shape", ["nested", "attachments"])
def test_imessage_html_of_nested_tags_or_many_attachments_parses_in_linear_time(
        shape, tmp_path):
    """The page's parser walked its stack of open elements at every tag (50,000 nested
    divs: over 20 s) and the message's attachments at every <img>."""
    def make(n: int) -> Path:
        folder = tmp_path / f"{shape}{n}"
        folder.mkdir()
        inner = {"nested": '<div class="x">' * n,
                 "attachments": "".join(f'<img src="attachments/1/{i}.jpg">'
                                        for i in range(n))}[shape]
        (folder / "+15555550123.html").write_text(
            '<div class="message"><div class="received"><span class="timestamp">'
            'Mar 12, 2024  6:40:05 PM</span><span class="sender">Sam</span>'
            f'<div class="message_part"><div class="attachment">{inner}</div></div>'
            '</div></div>')
        return folder

    assert _linear(make, 2_000) < 25  # here: about 10 after the fix; 60-100 before


def test_one_signal_chat_that_cannot_be_read_leaves_the_others(tmp_path):
    """signal-export's output of two chats, one's data.json a link out of the export:
    the whole export was refused (every chat lost); now that chat alone is, with the
    reason, as Meta's threads and Telegram's chats are."""
    from transcribe.chats import load

    export = _copy_export(tmp_path, "signal")
    shutil.copytree(export / "Sam", export / "Bob")
    (tmp_path / "elsewhere.json").write_text('{"secret": 1}\n')
    (export / "Bob" / "data.json").unlink()
    (export / "Bob" / "data.json").symlink_to(tmp_path / "elsewhere.json")
    bob, sam = load(export)
    assert (bob.name, bob.messages) == ("Bob", [])
    assert len(bob.problems) == 1 and "not a regular file inside the export" in bob.problems[0]
    assert sam.name == "Sam" and len(sam.messages) == 8 and sam.problems == []


@pytest.mark.parametrize("app", ["discord", "imessage-txt"])
def test_one_discord_channel_or_imessage_conversation_unreadable_leaves_the_others(
        app, tmp_path):
    from transcribe.chats import load

    export = _copy_export(tmp_path, app)
    [page] = [p for p in export.iterdir() if p.is_file()]
    (tmp_path / "elsewhere").write_text("Mar 12, 2024  6:40:05 PM\nEve\nsecret\n")
    bad = export / f"A{page.name}"
    bad.symlink_to(tmp_path / "elsewhere")
    if app == "discord":  # a link is never recognised, so: a page that is not JSON
        bad.unlink()
        bad.write_text('{"guild": {"id": "0"}, "channel": {"id": "9"}, "messages": [' + "x")
    bad_chat, good = sorted(load(export), key=lambda c: bool(c.messages))
    assert bad_chat.messages == [] and len(bad_chat.problems) == 1, bad_chat
    assert good.messages and good.problems == []


def test_a_chat_name_of_spaces_and_dots_gives_no_hidden_output():
    """" .bashrc" (a title with a space before its dot) gave ".bashrc.transcribed.md": a
    hidden file the user does not see, where the name promises no leading "."."""
    from transcribe.chat_render import safe_name

    for title in (" .bashrc", ". .x", " . ", "\u00a0.x"):
        name = safe_name(title)
        assert name and not name.startswith((".", " ", "\u00a0")), (title, name)


def test_a_zip_that_is_no_export_says_why_for_every_app(tmp_path):
    """A Discord channel's JSON left out as a zip bomb, and a zip of a zip, were refused
    with "no chat text (_chat.txt, WhatsApp Chat*.txt, result.json or messages.html)":
    neither the reason nor the other apps' chat texts were named."""
    from transcribe.chats import load
    from transcribe.errors import InputError

    bomb, nested = tmp_path / "bomb.zip", tmp_path / "nested.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Direct Messages - Sam [1].json",
                   '{"guild": {}, "channel": {"id": "1"}, "messages": [' + " " * (1 << 25)
                   + "]}")
    with zipfile.ZipFile(nested, "w") as z:
        z.write(bomb, "facebook-zoe-2024-1.zip")
    for archive, why in ((bomb, "zip bomb"), (nested, "facebook-zoe-2024-1.zip")):
        with pytest.raises(InputError) as e:
            load(archive, tmp_path / "work")
        assert why in e.value.reason and "chat.md" in e.value.reason, e.value.reason
    with pytest.raises(InputError) as e:
        load(tmp_path / "work")  # a folder of no export: every app's chat text named
    assert all(name in e.value.reason for name in ("_chat.txt", "result.json", "chat.md",
                                                   "message_1.json", "DiscordChatExporter",
                                                   "imessage-exporter")), e.value.reason


# Values a crafted (or an exporter's newer) JSON may hold where another type is expected.
_ODD = [None, 0, -1, 1e308, float("inf"), float("nan"), 10 ** 30, True, "", "x", [], {},
        [1], {"a": 1}, "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
        "../../etc/passwd", "/etc/passwd", "<script>", "a\nb\x1b[2J\r"]


def _mutate(value, rng):
    """`value` with about one field in eight replaced by an odd value, at any depth."""
    if isinstance(value, dict):
        return {k: rng.choice(_ODD) if rng.random() < 0.12 else _mutate(v, rng)
                for k, v in value.items()}
    if isinstance(value, list):
        return [rng.choice(_ODD) if rng.random() < 0.1 else _mutate(v, rng) for v in value]
    return value


@pytest.mark.parametrize("app", ["discord", "messenger", "signal", "telegram-account"])
def test_json_field_fuzz_of_each_app_is_read_or_refused_never_a_crash(app, tmp_path):
    """Seeded: each app's fixture JSON with fields swapped for odd values is read (the odd
    messages warnings) or refused with an InputError, and every chat read renders in
    md, txt and json. It found Discord's and Meta's exit 70s fixed above."""
    import random

    from transcribe.chats import load
    from transcribe.errors import InputError

    export = _copy_export(tmp_path, app)
    pages = sorted(p for p in export.rglob("*.json"))
    originals = {p: p.read_text(encoding="utf-8") for p in pages}
    started = time.monotonic()
    for seed in range(40):
        rng = random.Random(seed)
        for page, text in originals.items():
            if page.name == "data.json":  # Signal: one JSON object a line
                lines = [json.dumps(_mutate(json.loads(line), rng))
                         for line in text.splitlines()]
                page.write_text("\n".join(lines), encoding="utf-8")
            else:
                page.write_text(json.dumps(_mutate(json.loads(text), rng)), encoding="utf-8")
        try:
            chats = load(export)
        except InputError:
            continue
        _render_all(chats)
        assert all(isinstance(m.text, str) and isinstance(m.sender, (str, type(None)))
                   for c in chats for m in c.messages), seed
    assert time.monotonic() - started < 60  # here: under 2 s


@pytest.mark.parametrize("given", ["zip", "chat text"])
def test_output_onto_an_earlier_output_beside_a_zip_or_chat_text_is_allowed(given, tmp_path,
                                                                          home):
    """What is beside a zip is no part of it, and WhatsApp reads one chat text: the same
    `--output notes.txt` again replaces the earlier one (it was refused as a page of the
    export, WhatsApp taking any .txt for a chat)."""
    export = tmp_path / "wa"
    export.mkdir()
    (export / TEXT).write_text("12/03/2024, 18:44 - Sam: hi\n")
    archive = tmp_path / "wa.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(export / TEXT, TEXT)
    source, folder = (archive, tmp_path) if given == "zip" else (export / TEXT, export)
    earlier = folder / "notes.txt"
    earlier.write_text("2024-03-12 18:44 Sam: the earlier output\n")
    out = _chat(home, str(source), "--format", "txt", "--output", str(earlier))
    assert out.returncode == 0, out.stderr
    assert earlier.read_text() == "2024-03-12 18:44 Sam: hi\n"


def test_a_discord_sticker_is_a_media_line_not_an_empty_message(tmp_path):
    """DiscordChatExporter keeps a sticker in "stickers" (name, sourceUrl), not in
    "attachments": a sticker sent alone came out as an empty message."""
    from transcribe.chats import load

    export = tmp_path / "discord"
    export.mkdir()
    (export / "Direct Messages - Sam [1].json").write_text(json.dumps({
        "guild": {"id": "0", "name": "Direct Messages"}, "channel": {"id": "1", "name": "Sam"},
        "messages": [{"id": "2", "type": "Default", "timestamp": "2024-03-12T18:40:05+00:00",
                      "content": "", "author": {"name": "sam", "nickname": "Sam"},
                      "attachments": [], "stickers": [
                          {"id": "3", "name": "Wave", "format": "Png",
                           "sourceUrl": "https://media.discordapp.net/stickers/3.png"}]}]}))
    [chat] = load(export)
    [message] = chat.messages
    assert (message.kind, message.omitted) == ("media", True)
    assert "Wave" in message.text


def test_a_signal_sticker_in_data_json_is_its_emoji_as_in_chat_md(tmp_path):
    """sigexport's data.json keeps a sticker in "sticker" ({"emoji": ...}); chat.md writes
    its emoji; read from data.json, a sticker sent alone was an empty message."""
    from transcribe.chats import load

    chat = tmp_path / "signal" / "Sam"
    chat.mkdir(parents=True)
    (chat / "chat.md").write_text("[2024-03-12 18:40:05] Sam: \n(( 👋 ))\n")
    (chat / "data.json").write_text(json.dumps({
        "date": "2024-03-12T18:40:05", "sender": "Sam", "body": "", "quote": "",
        "sticker": {"id": "1", "packId": "p", "packKey": "k", "emoji": "👋",
                    "extension": None}, "reactions": [], "attachments": [],
        "deleted": False, "call": False, "missed": False}) + "\n")
    [from_json] = load(tmp_path / "signal")
    (chat / "data.json").unlink()
    [from_md] = load(tmp_path / "signal")
    assert [m.text for m in from_json.messages] == [m.text for m in from_md.messages] == ["👋"]
