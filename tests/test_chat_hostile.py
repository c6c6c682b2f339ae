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
