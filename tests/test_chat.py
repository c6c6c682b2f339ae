"""`transcribe chat` on real-looking exports under sample_audio/chats/, with the real model."""

import json
import re
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest

from conftest import private_home, run_cli
from wer import wer

ROOT = Path(__file__).resolve().parent.parent
CHATS = ROOT / "sample_audio" / "chats"
REFS = json.loads((ROOT / "sample_audio" / "references.json").read_text())

# (fixture, zipped too, [(sender, time, kind, reference note or None)])
CASES = {
    "whatsapp-android-24h": [
        (None, "2024-03-12T18:40:00", "system", None),
        ("Sam", "2024-03-12T18:44:00", "text", None),
        ("Alice", "2024-03-13T18:45:00", "voice", "PTT-20240312-WA0007.opus"),
        ("Sam", "2024-03-13T18:46:00", "text", None),
        ("Sam", "2024-03-13T18:47:00", "media", "omitted"),
    ],
    "whatsapp-android-12h": [
        (None, "2024-03-12T18:40:00", "system", None),
        ("Sam", "2024-03-12T18:44:00", "text", None),
        ("María", "2024-03-13T18:45:00", "voice", "AUD-20240311-WA0003.mp3"),
        ("Sam", "2024-03-13T18:46:00", "text", None),
        ("Sam", "2024-03-13T18:47:00", "media", "omitted"),
    ],
    "whatsapp-ios": [
        (None, "2024-03-12T18:40:00", "system", None),
        ("Sam", "2024-03-12T18:44:10", "text", None),
        ("Alice", "2024-03-13T18:45:02", "voice", "PTT-20240312-WA0007.opus"),
        ("Sam", "2024-03-13T18:46:30", "text", None),
        ("Sam", "2024-03-13T18:47:00", "voice", "omitted"),
    ],
    "telegram-json": [
        ("Sam", "2024-03-12T18:40:00", "system", None),
        ("Sam", "2024-03-12T18:44:10", "text", None),
        ("Alice", "2024-03-12T18:45:02", "voice", "audio_2024-03-12_18-45-02.ogg"),
        ("Sam", "2024-03-12T18:46:30", "text", None),
        ("Alice", "2024-03-12T18:50:00", "voice", "New Recording 12.m4a"),
        ("Sam", "2024-03-12T18:51:00", "voice", "omitted"),
    ],
}
CASES["telegram-html"] = CASES["telegram-json"]  # the same chat, exported as HTML


def _export(tmp_path: Path, name: str, zipped: bool) -> Path:
    folder = tmp_path / name
    shutil.copytree(CHATS / name, folder)
    if not zipped:
        return folder
    archive = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in folder.rglob("*"):
            z.write(f, f.relative_to(folder))
    shutil.rmtree(folder)
    return archive


def _jobs(home: Path) -> int:
    dbs = list(home.rglob("*.sqlite*")) + list(home.rglob("*.db"))
    db = next(p for p in dbs if p.suffix in (".db", ".sqlite", ".sqlite3"))
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM jobs").fetchone()[0]


CHAT_NAMES = {"whatsapp-android-24h": "Sam", "whatsapp-android-12h": "María",
              "whatsapp-ios": "whatsapp-ios", "telegram-json": "Sam", "telegram-html": "Sam"}


def _paths(home: Path) -> list[Path]:
    with sqlite3.connect(home / "data" / "transcribe.db") as con:
        return [Path(p) for p, in con.execute("SELECT path FROM jobs")]


def _senders(home: Path) -> list:
    with sqlite3.connect(home / "data" / "transcribe.db") as con:
        return sorted(tuple(r) for r in con.execute("SELECT chat, sender, sent_at FROM jobs"))


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_chat_export(name, zipped, tmp_path, home):
    if zipped and name.startswith("telegram"):
        pytest.skip("Telegram Desktop exports a folder, not a zip")
    mine = private_home(tmp_path / "home", home)
    env = {"TRANSCRIBE_HOME": str(mine)}
    export = _export(tmp_path, name, zipped)
    out = run_cli("chat", str(export), "--format", "json", "--output", "-", env=env)
    assert out.returncode == 0, out.stderr
    messages = [json.loads(line) for line in out.stdout.splitlines()]
    expected = CASES[name]
    assert [(m["sender"], m["time"], m["kind"]) for m in messages] == \
        [(s, t, k) for s, t, k, _ in expected]
    for m, (_, _, kind, note) in zip(messages, expected):
        if note == "omitted":
            assert m["omitted"] and "transcript" not in m
        elif note:
            ref = REFS[note]
            assert m["transcript"]["language"] == ref["language"]
            assert wer(ref["text"], m["transcript"]["text"]) < 0.5
    jobs = _jobs(mine)
    assert _senders(mine) == sorted((CHAT_NAMES[name], s, t) for s, t, k, n in expected
                                    if k == "voice" and n != "omitted")
    if zipped:  # kept where the store says, not in a temporary folder deleted since
        for path in _paths(mine):
            assert path.is_file() and path.is_relative_to(mine / "data" / "chats"), path
    assert jobs == sum(1 for *_, n in expected if n and n != "omitted")

    again = run_cli("chat", str(export), "-v", "--format", "md", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 transcribed now" in again.stderr
    assert _jobs(mine) == jobs
    md = next(tmp_path.glob("*.transcribed.md")).read_text()
    assert "voice note" in md and ("omitted" in md or "missing" in md)


def test_bad_line_and_damaged_note_do_not_stop_the_chat(tmp_path, home):
    export = tmp_path / "chat"
    export.mkdir()
    note = (CHATS / "whatsapp-android-24h" / "PTT-20240312-WA0007.opus").read_bytes()
    (export / "PTT-20240312-WA0008.opus").write_bytes(note[: len(note) // 3])
    shutil.copy(CHATS / "whatsapp-android-24h" / "PTT-20240312-WA0007.opus", export)
    (export / "WhatsApp Chat with Sam.txt").write_text(
        "garbage before the chat\n"
        "12/03/2024, 18:44 - Alice: PTT-20240312-WA0008.opus (file attached)\n"
        "13/03/2024, 18:45 - Alice: PTT-20240312-WA0007.opus (file attached)\n"
        "13/03/2024, 18:46 - Sam: thanks\n", encoding="utf-8")
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    out = run_cli("chat", str(export), "--format", "txt", "--output", "-", env=env)
    assert out.returncode == 1, out.stderr
    assert "WhatsApp Chat with Sam.txt:1" in out.stderr
    lines = out.stdout.splitlines()
    assert "truncated" in lines[0]  # transcribed as far as it goes, and marked
    assert "Alice: 🎤" in lines[1] and "meeting" in lines[1].lower()
    assert lines[2].endswith("Sam: thanks")


def test_since_keeps_later_messages_only(tmp_path, home):
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    out = run_cli("chat", str(CHATS / "whatsapp-android-24h"), "--since", "2024-03-13",
                  "--format", "json", "--output", "-", "--no-store", env=env)
    assert out.returncode == 0, out.stderr
    times = [json.loads(line)["time"] for line in out.stdout.splitlines()]
    assert times == ["2024-03-13T18:45:00", "2024-03-13T18:46:00", "2024-03-13T18:47:00"]


def test_telegram_html_gives_what_the_json_export_gives(tmp_path, home):
    """The same chat exported both ways comes out the same, page 2 and joined messages
    included; the second export's notes come from the store (same audio, same SHA-256)."""
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    outputs = {}
    for name in ("telegram-json", "telegram-html"):
        out = run_cli("chat", str(CHATS / name), "--format", "md", "--output", "-", "-v",
                      env=env)
        assert out.returncode == 0, out.stderr
        outputs[name] = out.stdout
    assert "0 transcribed now" in out.stderr
    assert outputs["telegram-html"] == outputs["telegram-json"]
    assert "phone call (5 seconds)" in outputs["telegram-html"]
    assert "**2024-03-12 18:44 Sam:** See you tomorrow?" in outputs["telegram-html"]


def _page(history: str) -> str:
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"/></head><body>'
            '<div class="page_wrap"><div class="page_header"><div class="content">'
            '<div class="text bold">\nTeam\n</div></div></div>'
            f'<div class="page_body chat_page"><div class="history">{history}</div></div>'
            '</div></body></html>')


def _msg(number: int, title: str, inner: str, joined: bool = False) -> str:
    cls = "message default clearfix" + (" joined" if joined else "")
    return (f'<div class="{cls}" id="message{number}"><div class="body">'
            f'<div class="pull_right date details" title="{title}">00:00</div>{inner}'
            '</div></div>')


def test_telegram_html_service_forwarded_and_bad_messages(tmp_path, home):
    """Date lines are no messages, a service message takes the last time seen, a forwarded
    message is the forwarder's, titles without "UTC" (exports before 2021) work, a photo
    is media, a message with a broken time is one line on stderr and the rest comes out."""
    export = tmp_path / "ChatExport_2024-03-14"
    export.mkdir()
    (export / "messages.html").write_text(_page(
        '<div class="message service" id="message-1"><div class="body details">'
        '13 March 2024</div></div>'
        '<div class="message service" id="message1"><div class="body details">'
        'Sam created group &laquo;Team&raquo;</div></div>'
        + _msg(2, "13.03.2024 09:00:05", '<div class="from_name">Sam</div>'
               '<div class="text">Morning &amp; <em>coffee</em>?</div>')
        + _msg(3, "13.03.2024 09:01:00 UTC+01:00",
               '<div class="pull_left forwarded userpic_wrap"></div>'
               '<div class="forwarded body"><div class="from_name">Bob<span class="details">'
               ' 01.03.2024 10:00:00</span></div><div class="text">old news</div></div>',
               joined=True)
        + _msg(4, "yesterday", '<div class="from_name">Alice</div><div class="text">x</div>')
        + _msg(5, "13.03.2024 09:02:00 UTC+01:00", '<div class="from_name">Alice</div>'
               '<div class="media_wrap clearfix"><a class="photo_wrap clearfix pull_left" '
               'href="photos/photo_1@13-03-2024_09-02-00.jpg"><img class="photo" src="x"/>'
               '</a></div>')), encoding="utf-8")
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    out = run_cli("chat", str(export), "--format", "json", "--output", "-", env=env)
    assert out.returncode == 0, out.stderr
    assert "messages.html:" in out.stderr and "yesterday" in out.stderr
    got = [(m["time"], m["sender"], m["kind"], m["text"], m["omitted"])
           for m in map(json.loads, out.stdout.splitlines())]
    assert got == [
        ("2024-03-13T00:00:00", None, "system", "Sam created group «Team»", False),
        ("2024-03-13T09:00:05", "Sam", "text", "Morning & coffee?", False),
        ("2024-03-13T09:01:00", "Sam", "text", "old news", False),
        ("2024-03-13T09:02:00", "Alice", "media", "photos/photo_1@13-03-2024_09-02-00.jpg",
         True),
    ]


@pytest.mark.parametrize("make", ["missing", "not-a-zip", "no-chat-text"])
def test_an_export_that_cannot_be_read_is_one_line_and_exit_1(make, tmp_path, home):
    path = {"missing": tmp_path / "gone.zip", "not-a-zip": tmp_path / "chat.zip",
            "no-chat-text": tmp_path / "folder"}[make]
    if make == "not-a-zip":
        path.write_bytes(b"not a zip at all")
    elif make == "no-chat-text":
        path.mkdir()
    out = run_cli("chat", str(path), "--no-store", env={"TRANSCRIBE_HOME": str(home)})
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith(f"error: {path}: ") and len(out.stderr.splitlines()) == 1
    assert "internal error" not in out.stderr


def test_search_by_chat_and_sender(tmp_path, home):
    """`search --chat/--from` keeps one chat's or one sender's notes (any case, accents
    kept as written), and each match says which chat and who sent it."""
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    for name in ("whatsapp-android-24h", "whatsapp-android-12h", "telegram-json"):
        assert run_cli("chat", str(CHATS / name), "--output", str(tmp_path / f"{name}.md"),
                       env=env).returncode == 0
    words = "meeting OR train OR milk OR coffee OR mañana OR viaje OR llamo OR maría"

    def search(*flags):
        out = run_cli("search", "--json", words, *flags, env=env)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    everything = search()
    assert len(everything) == 4
    in_sam = search("--chat", "sam")
    assert len(in_sam) == 3 and {(h["chat"], h["sender"]) for h in in_sam} == {("Sam", "Alice")}
    [maria] = search("--from", "MARÍA")
    assert (maria["chat"], maria["sender"], maria["app"]) == ("María", "María", "whatsapp")
    assert search("--chat", "Sam", "--from", "Sam") == []
    assert len(search("--chat", "Sam", "--from", "alice")) == 3
    text = run_cli("search", words, "--from", "maría", env=env).stdout
    assert "  María, from María" in text.splitlines()[0]


def _long_chat(tmp_path: Path) -> tuple[Path, int]:
    """A WhatsApp chat with five different voice notes (the sample notes, renamed)."""
    export = tmp_path / "long"
    export.mkdir()
    samples = ROOT / "sample_audio"
    notes = {"PTT-20240312-WA0001.opus": "PTT-20240312-WA0007.opus",
             "AUD-20240312-WA0002.mp3": "AUD-20240311-WA0003.mp3",
             "PTT-20240312-WA0003.opus": "audio_2024-03-12_18-45-02.ogg",
             "AUD-20240312-WA0004.m4a": "New Recording 12.m4a",
             "AUD-20240312-WA0005.wav": "voicemail-8k.wav"}
    lines = []
    for n, (name, sample) in enumerate(notes.items()):
        shutil.copy(samples / sample, export / name)
        lines.append(f"12/03/2024, 18:4{n} - Alice: {name} (file attached)")
    (export / "WhatsApp Chat with Sam.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return export, len(notes)


def _on_a_terminal(args: list[str], env: dict, until=None) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as a user's shell would; when `until()`
    becomes true (it is given what the terminal got so far), press Ctrl-C (SIGINT).
    Returns the exit code and what the terminal got."""
    import fcntl
    import os
    import pty
    import signal
    import struct
    import subprocess
    import sys
    import termios
    import threading
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "transcribe", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, cwd=ROOT,
                            env={**os.environ, **env},
                            # as in a user's shell: a test run started in the background
                            # (`cmd &`) ignores SIGINT, and its children would inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    got = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if until is not None:
            deadline = time.monotonic() + 240
            while (not until(got.decode("utf-8", "replace")) and proc.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    os.close(master)
    return code, got.decode("utf-8", "replace")


def _jobs_now(home: Path) -> int:
    db = home / "data" / "transcribe.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT count(*) FROM jobs WHERE state='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _made(home: Path) -> dict:
    with sqlite3.connect(home / "data" / "transcribe.db") as con:
        return dict(con.execute("SELECT job_id, created_at FROM transcripts").fetchall())


def test_progress_ctrl_c_keeps_what_is_done_and_the_next_run_goes_on(tmp_path, home):
    """On a terminal: "voice note N of M" and the time left. Ctrl-C after the first note:
    exit 130, what is done stays in the store; the same command again transcribes only
    the rest (quietly with -q), and every note is in the store once, with its chat."""
    export, total = _long_chat(tmp_path)
    mine = private_home(tmp_path / "home", home)
    env = {"TRANSCRIBE_HOME": str(mine)}
    args = ["chat", str(export), "--output", str(tmp_path / "out.md"), "-v"]

    # the bar moving on to the second note: the first is in the store (the store's own
    # count, polled, was seen to miss a quick run on a fresh clone: all 5 done, exit 0)
    code, screen = _on_a_terminal(args, env, until=lambda shown: "voice note 2 of" in shown)
    kept = _jobs_now(mine)
    assert code == 130, screen
    assert 1 <= kept < total, "interrupted after the first note, before the last"
    assert f"voice note 1 of {total}" in screen
    assert re.search(r"\d:\d\d:\d\d|-:--:--", screen), "the time left"
    assert "interrupted" in screen and not (tmp_path / "out.md").exists()
    made = _made(mine)

    code, screen = _on_a_terminal([*args[:-1], "-q"], env)
    assert code == 0, screen
    assert "voice note" not in screen, "-q: no progress"
    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert f"{total} voice note(s), 0 transcribed now" in again.stderr
    assert "voice note 1 of" not in again.stderr, "no progress when stderr is not a terminal"
    with sqlite3.connect(mine / "data" / "transcribe.db") as con:
        rows = con.execute("SELECT state, chat, sender FROM jobs").fetchall()
    assert rows == [("done", "Sam", "Alice")] * total
    assert {job: at for job, at in _made(mine).items() if job in made} == made, \
        "the notes kept before Ctrl-C were not transcribed again"
    assert (tmp_path / "out.md").read_text().count("🎤") == total


def test_a_note_kept_before_the_import_gets_its_chat_and_sender(tmp_path, home):
    """Transcribed on its own first (no chat then), the note is not transcribed again by
    the chat's import, but is marked with the chat and its sender."""
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    note = CHATS / "whatsapp-android-24h" / "PTT-20240312-WA0007.opus"
    assert run_cli(str(note), env=env).returncode == 0
    out = run_cli("chat", str(CHATS / "whatsapp-android-24h"), "-v", "--output", "-", env=env)
    assert out.returncode == 0 and "0 transcribed now" in out.stderr, out.stderr
    with sqlite3.connect(tmp_path / "home" / "data" / "transcribe.db") as con:
        assert con.execute("SELECT chat, sender, sent_at FROM jobs").fetchall() == [
            ("Sam", "Alice", "2024-03-13T18:45:00")], "the chat's time, not the file's"


MISSING = {  # a chat text naming a voice note its export lacks, and media the app left out
    "android": ("WhatsApp Chat with Sam.txt",
                "12/03/2024, 18:44 - Sam: PTT-20240312-WA0099.opus (file attached)\n"
                "12/03/2024, 18:45 - Sam: <Media omitted>\n"
                "12/03/2024, 18:46 - Alice: ok\n"),
    "ios": ("_chat.txt",
            "[12.03.24, 18:44:00] Sam: \u200e<attached: 00000099-AUDIO-2024-03-12-18-44-00.opus>\n"
            "[12.03.24, 18:45:00] Sam: \u200eimage omitted\n"
            "[12.03.24, 18:46:00] Alice: ok\n"),
}


@pytest.mark.parametrize("fmt", ["md", "txt", "json"])
@pytest.mark.parametrize("app", sorted(MISSING))
def test_missing_voice_note_and_omitted_media_are_marked_in_every_format(app, fmt, tmp_path,
                                                                         home):
    name, text = MISSING[app]
    export = tmp_path / "export"
    export.mkdir()
    (export / name).write_text(text, encoding="utf-8")
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    out = run_cli("chat", str(export), "--format", fmt, "--output", "-", env=env)
    assert out.returncode == 0, out.stderr
    if fmt == "json":
        voice, media, said = map(json.loads, out.stdout.splitlines())
        assert (voice["kind"], voice["omitted"], voice["sender"]) == ("voice", True, "Sam")
        assert voice["attachment"] in text and "transcript" not in voice
        assert (media["kind"], media["omitted"]) == ("media", True)
        assert (said["kind"], said["omitted"], said["text"]) == ("text", False, "ok")
        return
    lines = [line for line in out.stdout.splitlines() if line and not line.startswith("# ")]
    assert len(lines) == 3, out.stdout
    assert "Sam" in lines[0] and "🎤 voice note missing from the export" in lines[0]
    assert "Sam" in lines[1] and "📎 media omitted from the export" in lines[1]
    assert "voice note" not in lines[2] and "omitted" not in lines[2]


# One WhatsApp line of each format seen in real exports (other projects' fixtures and
# parsers: chat-miner, whatstk and others), with what it must become:
# (time, sender, kind, omitted). Voice notes named here are not in the export.
LINES = {
    "us-no-comma-p.m.": ("9/24/2019 11:30 p.m. - John Doe: hi",
                         ("2019-09-24T23:30:00", "John Doe", "text", False)),
    "es-p. m.-spaced": ("01/30/2019, 08:49 p. m. - Jahn Doe: hola",
                        ("2019-01-30T20:49:00", "Jahn Doe", "text", False)),
    "es-a. m.-midnight": ("06/20/2020, 12:08 a. m. - Ana: ya",
                          ("2020-06-20T00:08:00", "Ana", "text", False)),
    "es-archivo-adjunto": ("13/03/2024, 6:45 p. m. - María: PTT-20240312-WA0007.opus "
                           "(archivo adjunto)",
                           ("2024-03-13T18:45:00", "María", "voice", True)),
    "es-multimedia-omitido": ("13/03/2024, 18:46 - María: <Multimedia omitido>",
                              ("2024-03-13T18:46:00", "María", "media", True)),
    "pt-no-comma-anexado": ("19/09/2026 21:25 - Fernando: PTT-20260919-WA0002.opus "
                            "(arquivo anexado)",
                            ("2026-09-19T21:25:00", "Fernando", "voice", True)),
    "pt-midia-oculta": ("19/09/2026 21:26 - Fernando: <Mídia oculta>",
                        ("2026-09-19T21:26:00", "Fernando", "media", True)),
    "de-medien-ausgeschlossen": ("13.03.24, 18:47 - Jonas: <Medien ausgeschlossen>",
                                 ("2024-03-13T18:47:00", "Jonas", "media", True)),
    "de-datei-angehaengt": ("13.03.24, 18:47 - Jonas: AUD-20240313-WA0001.opus "
                            "(Datei angehängt)",
                            ("2024-03-13T18:47:00", "Jonas", "voice", True)),
    "dashes": ("14-12-2022, 13:34 - John Doe: x", ("2022-12-14T13:34:00", "John Doe", "text",
                                                    False)),
    "year-first": ("2019/01/30, 20:49 - Jahn Doe: x",
                   ("2019-01-30T20:49:00", "Jahn Doe", "text", False)),
    "year-first-dot-after-time": ("2022/12/14, 13:34. - John Doe: x",
                                  ("2022-12-14T13:34:00", "John Doe", "text", False)),
    "no-break-space-pm": ("3/13/24, 6:45\u00a0PM - Sam: x",
                          ("2024-03-13T18:45:00", "Sam", "text", False)),
    "narrow-no-break-space-pm": ("3/13/24, 6:45\u202fPM - Sam: x",
                                 ("2024-03-13T18:45:00", "Sam", "text", False)),
    "ios-no-comma-p.m.": ("[13/10/22 11:37:00 p.m.] John Doe: x",
                          ("2022-10-13T23:37:00", "John Doe", "text", False)),
    "ios-month-first-dots": ("[10.21.21, 15:21:45] John Doe: x",
                             ("2021-10-21T15:21:45", "John Doe", "text", False)),
    "ios-dd/mm/yyyy": ("[13/03/2024, 18:45:02] Alice: x",
                       ("2024-03-13T18:45:02", "Alice", "text", False)),
    "ios-de-anhang": ("[13.03.24, 18:45:02] Alice: \u200e<Anhang: "
                      "00000012-AUDIO-2024-03-13-18-45-02.opus>",
                      ("2024-03-13T18:45:02", "Alice", "voice", True)),
    "ios-de-audio-weggelassen": ("[13.03.24, 18:45:02] Alice: \u200eAudio weggelassen",
                                 ("2024-03-13T18:45:02", "Alice", "voice", True)),
    "ios-es-adjunto": ("[13/03/24, 18:45:02] Alice: \u200e<adjunto: "
                       "00000012-AUDIO-2024-03-13-18-45-02.opus>",
                       ("2024-03-13T18:45:02", "Alice", "voice", True)),
    "ios-es-audio-omitido": ("[13/03/24, 18:45:02] Alice: \u200eaudio omitido",
                             ("2024-03-13T18:45:02", "Alice", "voice", True)),
    "ios-document-omitted": ("\u200e[13.03.24, 18:45:02] Alice: Report.pdf • 2 pages "
                             "\u200edocument omitted",
                             ("2024-03-13T18:45:02", "Alice", "media", True)),
    "text-ending-in-omitted": ("13/03/2024, 18:45 - Sam: the rest was omitted",
                               ("2024-03-13T18:45:00", "Sam", "text", False)),
}


@pytest.mark.parametrize("case", sorted(LINES))
def test_whatsapp_line_formats_of_other_locales(case, tmp_path, home):
    line, expected = LINES[case]
    export = tmp_path / "export"
    export.mkdir()
    (export / "WhatsApp Chat with Someone.txt").write_text(line + "\n", encoding="utf-8")
    out = run_cli("chat", str(export), "--format", "json", "--output", "-", "--no-store",
                  env={"TRANSCRIBE_HOME": str(home)})
    assert out.returncode == 0 and not out.stderr, out.stderr
    [m] = [json.loads(line) for line in out.stdout.splitlines()]
    assert (m["time"], m["sender"], m["kind"], m["omitted"]) == expected


def test_what_the_tuis_add_takes_for_a_chat_export(tmp_path):
    """A folder or zip with a chat's text at its top is an export; a folder that only holds
    one somewhere inside (~/Downloads), or voice notes with some other .txt, is not."""
    from transcribe.chats import is_export

    downloads = tmp_path / "Downloads"
    export = downloads / "WhatsApp Chat with Sam"
    shutil.copytree(CHATS / "whatsapp-android-24h", export)
    shutil.copy(CHATS / "whatsapp-android-24h" / "PTT-20240312-WA0007.opus", downloads)
    (downloads / "notes.txt").write_text("shopping list\n")
    assert is_export(export) and is_export(CHATS / "telegram-html")
    assert not is_export(downloads)
    assert is_export(_export(tmp_path / "z", "whatsapp-ios", zipped=True))
    loose = tmp_path / "loose.zip"
    with zipfile.ZipFile(loose, "w") as z:
        z.write(downloads / "PTT-20240312-WA0007.opus", "PTT-20240312-WA0007.opus")
    assert not is_export(loose) and not is_export(downloads / "PTT-20240312-WA0007.opus")


def test_an_unreadable_note_does_not_stop_a_chats_import(tmp_path):
    """The TUI's import queues every readable note of an export; an empty one is a
    problem of the export, said once, not the end of the import."""
    from transcribe.jobs import enqueue_chat
    from transcribe.store import Store

    export = tmp_path / "export"
    shutil.copytree(CHATS / "whatsapp-android-24h", export)
    (export / "PTT-20240313-WA0008.opus").write_bytes(b"")
    with open(export / "WhatsApp Chat with Sam.txt", "a", encoding="utf-8") as f:
        f.write("13/03/2024, 18:50 - Sam: PTT-20240313-WA0008.opus (file attached)\n")
    store = Store.open_default(tmp_path / "data")
    try:
        name, added, problems = enqueue_chat(store, export, tmp_path / "keep")
        assert name == "Sam" and len(added) == 1 and added[0][1]
        [job] = store.jobs()
        assert (job.chat, job.sender, job.sent_at, job.state) == \
            ("Sam", "Alice", "2024-03-13T18:45:00", "pending")
        assert len(problems) == 1 and "PTT-20240313-WA0008.opus" in problems[0]
    finally:
        store.close()


def test_a_telegram_photo_is_media_present_or_left_out_as_from_the_html_export(tmp_path,
                                                                              home):
    """A photo the export holds is media in its place (as the HTML export gives it); only
    one it left out ("File not included") is marked as left out."""
    export = tmp_path / "telegram"
    (export / "photos").mkdir(parents=True)
    (export / "photos" / "photo_1@12-03-2024_18-52-00.jpg").write_bytes(b"\xff\xd8\xff\xe0 jpeg")
    (export / "result.json").write_text(json.dumps({"name": "Sam", "messages": [
        {"id": 1, "type": "message", "date": "2024-03-12T18:52:00", "from": "Sam",
         "photo": "photos/photo_1@12-03-2024_18-52-00.jpg", "width": 800, "height": 600,
         "text": ""},
        {"id": 2, "type": "message", "date": "2024-03-12T18:53:00", "from": "Sam",
         "photo": "(File not included. Change data exporting settings to download.)",
         "width": 800, "height": 600, "text": "the view"}]}), encoding="utf-8")
    out = run_cli("chat", str(export), "--format", "txt", "--output", "-", "--no-store",
                  env={"TRANSCRIBE_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    present, left_out = out.stdout.splitlines()
    assert present.endswith("Sam: photos/photo_1@12-03-2024_18-52-00.jpg")
    assert left_out.endswith("Sam: 📎 media omitted from the export (the view)")
