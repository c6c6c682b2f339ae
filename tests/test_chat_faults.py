"""`transcribe chat` on hostile and damaged exports, as a user would run it: one line and a
documented exit code, the rest of the chat still out, the user's files never changed."""

import json
import os
import random
import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import private_home, run_cli

ROOT = Path(__file__).resolve().parent.parent
CHATS = ROOT / "sample_audio" / "chats"
NOTE = CHATS / "whatsapp-android-24h" / "PTT-20240312-WA0007.opus"
TEXT = "WhatsApp Chat with Sam.txt"


def _chat(cmd_home: Path, *args: str):
    return run_cli("chat", *args, "--no-store", env={"TRANSCRIBE_HOME": str(cmd_home)})


def _one_error_line(out, names: str, code: int = 1) -> None:
    assert out.returncode == code, out.stderr
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error: ") and names in out.stderr, out.stderr
    assert "internal error" not in out.stderr and "transcribe-chat-" not in out.stderr


def _whatsapp(tmp_path: Path) -> Path:
    export = tmp_path / "wa"
    shutil.copytree(CHATS / "whatsapp-android-24h", export)
    return export


def _zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(folder.rglob("*")):
            z.write(f, f.relative_to(folder))
    return archive


@pytest.mark.parametrize("data", ["[1, 2]", '{"name": "x", "messages": 5}',
                                  '{"messages": {"a": 1}}'])
def test_telegram_json_of_another_shape_is_one_line(data, tmp_path, home):
    (tmp_path / "result.json").write_text(data)
    _one_error_line(_chat(home, str(tmp_path), "--output", "-"), "result.json")


def test_telegram_messages_of_wrong_types_are_warnings_and_the_rest_comes_out(tmp_path, home):
    good = {"date": "2024-03-12T18:44:10", "from": "Sam", "text": "See you"}
    bad = [[1], {"date": "2024-03-12T18:45:00", "text": [5]},
           {"date": "2024-03-12T18:46:00", "file": 5}, {"date": "2024-03-12T18:47:00",
                                                        "photo": 7}]
    (tmp_path / "result.json").write_text(json.dumps({"name": "Sam", "messages": [*bad, good]}))
    out = _chat(home, str(tmp_path), "--format", "json", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("result.json: message") == 4 and "internal" not in out.stderr
    assert [json.loads(line)["text"] for line in out.stdout.splitlines()] == ["See you"]


def test_a_chat_name_is_never_a_path_for_the_output(tmp_path, home):
    export = tmp_path / "deep" / "ChatExport"
    export.mkdir(parents=True)
    (export / "result.json").write_text(json.dumps({"name": "../escaped/x", "messages": [
        {"date": "2024-03-12T18:44:10", "from": "Sam", "text": "hi"}]}))
    (tmp_path / "escaped").mkdir()
    out = _chat(home, str(export))
    assert out.returncode == 0, out.stderr
    assert not list((tmp_path / "escaped").iterdir())
    written = list((tmp_path / "deep").glob("*.transcribed.md"))
    assert len(written) == 1 and "hi" in written[0].read_text()


@pytest.mark.parametrize("target", ["text", "note", "zip"])
def test_output_onto_the_export_itself_is_refused(target, tmp_path, home):
    export = _whatsapp(tmp_path)
    archive = _zip(export, tmp_path / "wa.zip")
    victim = {"text": export / TEXT, "note": export / NOTE.name, "zip": archive}[target]
    before = victim.read_bytes()
    out = _chat(home, str(archive if target == "zip" else export), "--output", str(victim))
    _one_error_line(out, str(victim), code=2)
    assert victim.read_bytes() == before


def test_output_into_a_path_that_cannot_be_written_is_one_line(tmp_path, home):
    export = _whatsapp(tmp_path)
    (tmp_path / "a-file").write_text("")
    out = _chat(home, str(export), "--output", str(tmp_path / "a-file" / "chat.md"))
    _one_error_line(out, "cannot write the conversation")


def test_a_full_disk_leaves_the_earlier_output_whole(small_disk, tmp_path, home):
    export = tmp_path / "big"
    export.mkdir()
    (export / TEXT).write_text("".join(f"12/03/2024, 18:{n % 60:02d} - Sam: {'word ' * 40}\n"
                                       for n in range(400)))
    (small_disk / "chat.md").write_text("the earlier output\n")
    (small_disk / "filler").write_bytes(b"\0" * 40_000)
    out = _chat(home, str(export), "--output", str(small_disk / "chat.md"))
    _one_error_line(out, "No space left on device")
    assert (small_disk / "chat.md").read_text() == "the earlier output\n"
    assert sorted(p.name for p in small_disk.iterdir()) == ["chat.md", "filler"]


def test_a_zip_too_big_for_the_disk_is_refused_before_unpacking(small_disk, tmp_path, home):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(TEXT, "12/03/2024, 18:44 - Sam: hi\n")
        # 4 MB that do not pack (a note, not a bomb): more than the 64 kB disk holds
        z.writestr("PTT-20240312-WA0001.opus", random.Random(4).randbytes(4 << 20))
    out = run_cli("chat", str(archive), "--no-store", "--output", "-",
                  env={"TRANSCRIBE_HOME": str(home), "TMPDIR": str(small_disk)})
    _one_error_line(out, "bomb.zip")
    assert "MB is free" in out.stderr
    assert not list(small_disk.iterdir())


def test_a_damaged_member_of_a_zip_is_one_line_naming_the_zip(tmp_path, home):
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(CHATS / "whatsapp-android-24h" / TEXT, TEXT)
        z.write(NOTE, NOTE.name)
    data = bytearray(damaged.read_bytes())
    with zipfile.ZipFile(damaged) as z:
        info = z.getinfo(NOTE.name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 50, start + 90):  # inside the note's deflated data
        data[i] ^= 0xFF
    damaged.write_bytes(bytes(data))
    _one_error_line(_chat(home, str(damaged), "--output", "-"), "damaged.zip")


@pytest.mark.parametrize("content", [b"", b"\n  \n", bytes(range(256)) * 80],
                         ids=["empty", "blank", "binary"])
@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_a_chat_text_with_no_chat_line_is_one_line(content, zipped, tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    (export / TEXT).write_bytes(content)
    target = _zip(export, tmp_path / "chat.zip") if zipped else export
    _one_error_line(_chat(home, str(target), "--output", "-"),
                    f"{target}/{TEXT}" if zipped else TEXT)


def test_many_bad_lines_are_summed_up(tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    (export / TEXT).write_text("".join(f"junk {n}\n" for n in range(100))
                               + "12/03/2024, 18:44 - Sam: hello\n")
    out = _chat(home, str(export), "--format", "txt", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert len(out.stderr.splitlines()) <= 21 and "80 more" in out.stderr
    assert out.stdout == "2024-03-12 18:44 Sam: hello\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_a_chat_text_saved_again_as_utf16_or_with_a_bom_and_crlf(encoding, tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    (export / TEXT).write_bytes("12/03/2024, 18:44 - Sam: héllo\r\n12/03/2024, 18:45 - "
                                "Al: ok\r\n".encode(encoding))
    out = _chat(home, str(export), "--format", "txt", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2024-03-12 18:44 Sam: héllo\n2024-03-12 18:45 Al: ok\n"


def test_an_attachment_outside_the_export_is_never_read(tmp_path, home):
    """An absolute name, a ../ name, a link out of the export, a folder named like a note:
    each is missing from the export (it would have been transcribed, or uploaded)."""
    outside = tmp_path / "private"
    outside.mkdir()
    shutil.copy(NOTE, outside / "00000001-AUDIO-2024-03-12-18-45-02.opus")
    export = tmp_path / "chat"
    export.mkdir()
    (export / "PTT-20240312-WA0002.opus").symlink_to(outside /
                                                      "00000001-AUDIO-2024-03-12-18-45-02.opus")
    (export / "PTT-20240312-WA0003.opus").mkdir()
    (export / "_chat.txt").write_text(
        f"[12.03.24, 18:45:02] Sam: <attached: {outside}/00000001-AUDIO-2024-03-12-18-45-02.opus>\n"
        "[12.03.24, 18:45:03] Sam: <attached: ../private/00000001-AUDIO-2024-03-12-18-45-02.opus>\n"
        "[12.03.24, 18:45:04] Sam: <attached: PTT-20240312-WA0002.opus>\n"
        "[12.03.24, 18:45:05] Sam: <attached: PTT-20240312-WA0003.opus>\n")
    out = _chat(home, str(export), "--format", "json", "--output", "-")
    assert out.returncode == 0, out.stderr
    messages = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(m["kind"], m["omitted"], "transcript" in m) for m in messages] == \
        [("voice", True, False)] * 4


def test_two_chat_texts_in_one_zip_say_which_was_read(tmp_path, home):
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("WhatsApp Chat with A.txt", "12/03/2024, 18:44 - A: from A\n")
        z.writestr("WhatsApp Chat with B.txt", "12/03/2024, 18:44 - B: from B\n")
    out = _chat(home, str(archive), "--format", "txt", "--output", "-")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2024-03-12 18:44 A: from A\n"
    assert "two.zip/WhatsApp Chat with A.txt" in out.stderr and "Chat with B.txt" in out.stderr


def test_the_same_note_twice_in_a_chat_is_transcribed_once(tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    shutil.copy(NOTE, export)
    shutil.copy(NOTE, export / "PTT-20240312-WA0009.opus")  # forwarded: same audio, new name
    (export / TEXT).write_text(
        "12/03/2024, 18:44 - Sam: PTT-20240312-WA0007.opus (file attached)\n"
        "12/03/2024, 18:45 - Al: PTT-20240312-WA0007.opus (file attached)\n"
        "12/03/2024, 18:46 - Al: PTT-20240312-WA0009.opus (file attached)\n")
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    out = run_cli("chat", str(export), "-v", "--format", "json", "--output", "-", env=env)
    assert out.returncode == 0, out.stderr
    assert "1 transcribed now" in out.stderr
    texts = [json.loads(line)["transcript"]["text"] for line in out.stdout.splitlines()]
    assert len(texts) == 3 and len(set(texts)) == 1 and "meeting" in texts[0].lower()


def test_an_html_page_with_no_message_is_one_line(tmp_path, home):
    export = tmp_path / "ChatExport"
    export.mkdir()
    (export / "messages.html").write_bytes(bytes(range(256)) * 20)
    _one_error_line(_chat(home, str(export), "--output", "-"), "messages.html")


def test_the_output_is_readable_as_any_new_file_and_keeps_the_mode_it_had(tmp_path, home):
    export = _whatsapp(tmp_path)
    new, old = tmp_path / "new.md", tmp_path / "old.md"
    old.write_text("before")
    old.chmod(0o640)
    for out in (new, old):
        assert _chat(home, str(export), "--output", str(out)).returncode == 0
    assert new.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert old.stat().st_mode & 0o777 == 0o640 and "Sam" in old.read_text()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("since", ["2024-03-01T00:00+01:00", "2024-03-01T00:00Z"])
def test_since_with_a_time_zone_is_a_usage_error(since, tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    (export / TEXT).write_text("12/03/2024, 18:44 - Sam: hi\n")
    _one_error_line(_chat(home, str(export), "--since", since, "--output", "-"), "--since",
                    code=2)


def test_an_export_that_is_no_regular_file_is_one_line(tmp_path, home):
    """A pipe (or /dev/zero) would be read forever."""
    fifo = tmp_path / "WhatsApp Chat with Sam.txt"
    os.mkfifo(fifo)
    out = run_cli("chat", str(fifo), "--no-store", "--output", "-",
                  env={"TRANSCRIBE_HOME": str(home)}, timeout=60)
    _one_error_line(out, str(fifo))


def test_a_zip_without_the_utf8_flag_keeps_the_chats_name(tmp_path, home):
    """Info-ZIP's `zip` writes UTF-8 names without the flag; zipfile reads them as cp437."""
    archive = tmp_path / "chat.zip"
    with zipfile.ZipFile(archive, "w") as z:  # an ASCII name: no UTF-8 flag
        z.writestr("WhatsApp Chat with MarXXa.txt", "12/03/2024, 18:44 - Sam: hola\n")
    archive.write_bytes(archive.read_bytes().replace(b"MarXXa", "María".encode()))
    out = _chat(home, str(archive), "--output", "-")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# María\n")
