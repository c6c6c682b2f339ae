"""Random chat exports (seeded): WhatsApp texts, Telegram JSON (one chat or a whole
account) and HTML pages, folders and zips, with hostile names, nesting, sizes and dates.
However they are made, reading one is a list of chats or an `InputError` (the CLI's one
line and exit 1), never another exception (the CLI's exit 70); nothing is written
outside the folder a zip is unpacked into, or the output folder; Markdown written opens
as text; parsing takes time in proportion to the export's size."""

import json
import random
import time
import zipfile
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from conftest import run_cli

SEEDS = range(12)
PER_SEED = 12  # exports made per seed: 144 in all, a few seconds on 2 cores

NAMES = ["Sam", "María", "😀" * 70, "../escaped", "/etc/passwd", "a/b\\c", "<b>bold</b>",
         "[x](javascript:alert(1))", "", " ", ".hidden", "\x1b[31mred", "x" * 300,
         "Bob: fake", "**2024-03-12 Bob:**", "# heading", "\u202eevil", "null\x00byte",
         "![i](http://host/p.png)", "-", "1. item"]
DATES = ["12/03/2024", "3/12/24", "31/02/2024", "12/03/0000", "99/99/99", "2024/13/45",
         "2019/01/30", "12.03.24", "1/1/1", "00/00/0000", "29/02/2023", "13-12-2022"]
TIMES = ["18:44", "6:45 PM", "25:61", "12:00 a. m.", "18:44:10", "00:00", "99:99:99"]
EXTS = [".opus", ".ogg", ".m4a", ".jpg", ".pdf", "", ".OPUS", ".txt"]


def _text(rng: random.Random) -> str:
    pieces = [rng.choice(NAMES), "hello", "<script>alert(1)</script>", "&lt;b&gt;", "\n",
              "line\nmore", "\r", "é", "\ufeff", "\u200e", "*", "_", "`code`", "|a|b|",
              "> quote", "=====", "\t"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))


def _attachment(rng: random.Random) -> str:
    stem = rng.choice(["PTT-20240312-WA0001", "AUD-1", "00000012-AUDIO-2024-03-12",
                       "../outside", "/abs/path", "x" * 260, "a/b/c", ""])
    return stem + rng.choice(EXTS)


def _whatsapp(rng: random.Random, n: int) -> str:
    lines = []
    for _ in range(n):
        shape = rng.random()
        head = f"{rng.choice(DATES)}, {rng.choice(TIMES)}"
        if shape < 0.4:
            lines.append(f"{head} - {rng.choice(NAMES)}: {_text(rng)}")
        elif shape < 0.55:
            lines.append(f"[{rng.choice(DATES)}, {rng.choice(TIMES)}] {rng.choice(NAMES)}: "
                         f"\u200e<attached: {_attachment(rng)}>")
        elif shape < 0.7:
            lines.append(f"{head} - {rng.choice(NAMES)}: {_attachment(rng)} (file attached)")
        elif shape < 0.8:
            lines.append(f"{head} - {_text(rng)}")  # a system line
        else:
            lines.append(_text(rng))  # a continuation line, or garbage
    return "\n".join(lines) + "\n"


def _value(rng: random.Random, depth: int = 0):
    """Any JSON value, now and then nested deep or out of range."""
    roll = rng.random()
    if roll < 0.02:
        return json.loads("[" * 40 + "]" * 40)
    if roll < 0.1 and depth < 3:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.15 and depth < 3:
        return {rng.choice(["text", "type", "x"]): _value(rng, depth + 1)}
    return rng.choice([None, True, 0, -1, 1e308, float("inf"), 99999999999999, "", "x",
                       "2024-03-12T18:44:10", "99999999999999-01-01T00:00:00",
                       "1710265450", "-99999999999", rng.choice(NAMES)])


def _telegram_message(rng: random.Random, n: int) -> dict:
    message = {"id": n, "type": rng.choice(["message", "service", "other"]),
               "from": rng.choice(NAMES), "text": rng.choice([_text(rng), [
                   _text(rng), {"type": "bold", "text": _text(rng)}], _value(rng)])}
    if rng.random() < 0.8:
        message["date"] = rng.choice(["2024-03-12T18:44:10", "2024-02-30T00:00:00",
                                      _value(rng)])
    if rng.random() < 0.5:
        message["date_unixtime"] = rng.choice(["1710265450", "1e400", "99999999999999999",
                                               _value(rng)])
    if rng.random() < 0.3:
        message.update(media_type=rng.choice(["voice_message", "video_message", "sticker",
                                              _value(rng)]),
                       file=rng.choice([_attachment(rng), "(File not included. x)",
                                        _value(rng)]))
    if rng.random() < 0.1:
        message.update(action="phone_call", duration_seconds=_value(rng))
    if rng.random() < 0.1:
        message["photo"] = rng.choice([_attachment(rng), _value(rng)])
    for key in rng.sample(sorted(message), k=rng.randint(0, 1)):
        message[key] = _value(rng)  # one field of a wrong type, now and then
    return message


def _telegram_json(rng: random.Random, n: int, whole: bool = False) -> str:
    """One chat's export, a whole account's, or (now and then) any JSON at all; `whole`:
    one chat's, always."""
    def chat(k: int) -> dict:
        return {"name": rng.choice(NAMES + [None, 5]), "type": "personal_chat", "id": k,
                "messages": [_telegram_message(rng, i) for i in range(k)]}

    if whole:
        return json.dumps(chat(n))
    if rng.random() < 0.4:
        data = {"chats": {"list": [chat(n // 3) for _ in range(3)] + [_value(rng)]},
                "left_chats": rng.choice([{"list": []}, _value(rng)])}
    else:
        data = chat(n)
    if rng.random() < 0.1:
        data = _value(rng)
    return json.dumps(data, ensure_ascii=rng.random() < 0.5)


HTML = ['<div class="message default clearfix" id="message{n}">', '<div class="body">',
        '<div class="pull_right date details" title="12.03.2024 18:44:10">',
        '<div class="pull_right date details" title="31.02.2024 99:99">',
        '<div class="from_name">{name}</div>', '<div class="text">{text}</div>',
        '<div class="forwarded body">', '<a class="media media_voice_message" href="{att}">',
        '<div class="message service" id="message-{n}"><div class="body details">'
        '12 March 2024</div></div>', '<div class="message service" id="message-{n}"><div '
        'class="body details">12 March 99999999999999999999</div></div>', '</div>', '</span>', '</a>', '<br>', '<div>', '<span>',
        '<!-- x', '<![CDATA[ x', '&amp;&lt;&#0;&#xFFFFFFFF;', '<div class="page_header">'
        '<div class="text bold">{name}</div></div>', '</div></div></div>', '<img src=x>']


def _telegram_html(rng: random.Random, n: int) -> str:
    parts = ['<div class="history">']
    for i in range(n):
        parts.append(rng.choice(HTML).format(n=i, name=rng.choice(NAMES), text=_text(rng),
                                             att=_attachment(rng)))
    return "".join(parts)


def _export(rng: random.Random, folder: Path, n: int) -> Path:
    """A random export in `folder`: the folder itself, one of its files, or a zip."""
    folder.mkdir(parents=True)
    kind = rng.choice(["whatsapp", "ios", "json", "html"])
    name, text = {"whatsapp": ("WhatsApp Chat with Sam.txt", lambda: _whatsapp(rng, n)),
                  "ios": ("_chat.txt", lambda: _whatsapp(rng, n)),
                  "json": ("result.json", lambda: _telegram_json(rng, n)),
                  "html": ("messages.html", lambda: _telegram_html(rng, n))}[kind]
    (folder / name).write_bytes(text().encode("utf-8", "surrogatepass")
                                if rng.random() < 0.9 else text().encode("latin-1", "replace"))
    if kind == "html" and rng.random() < 0.5:
        (folder / "messages2.html").write_text(_telegram_html(rng, n), encoding="utf-8")
    for _ in range(rng.randint(0, 2)):  # a few files the chat may name (no real audio)
        member = Path(_attachment(rng)).name[:200]
        if member and member != name:
            (folder / member).write_bytes(rng.randbytes(rng.randint(0, 64)))
    roll = rng.random()
    if roll < 0.3:
        return _zipped(rng, folder)
    return folder / name if roll < 0.45 else folder


def _zipped(rng: random.Random, folder: Path) -> Path:
    archive = folder.with_suffix(".zip")
    prefix = rng.choice(["", "ChatExport/", "../../", "/abs/", "a/../../"])
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.iterdir()):
            z.write(f, prefix + f.name)
        if rng.random() < 0.3:
            z.writestr(prefix + "PTT-20240312-WA0001.opus", b"\0" * (3 << 20))  # a bomb
    return archive


def _tree(root: Path, skip: Path | None = None) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and (skip is None or skip not in p.parents)}


def _read(path: Path, workdir: Path):
    """What `transcribe chat` does with an export short of transcribing: read it and
    render each chat every way. An InputError is a user's error (exit 1)."""
    from transcribe import chat_render, chats
    from transcribe.errors import InputError

    try:
        conversations = chats.load(path, workdir)
    except InputError as e:
        assert "\n" not in e.reason.strip() or len(e.reason) < 100_000
        return []
    for conv in conversations:
        for fmt in ("md", "txt", "json"):
            chat_render.render(conv, conv.messages, {}, fmt)
        assert "/" not in chat_render.safe_name(conv.name)
        assert len(chat_render.safe_name(conv.name).encode()) <= 100
    return conversations


@pytest.mark.parametrize("seed", SEEDS)
def test_random_exports_are_read_or_refused_and_write_nothing_else(seed, tmp_path):
    from transcribe.chat_render import render

    rng = random.Random(seed)
    exports, work = tmp_path / "exports", tmp_path / "work"
    work.mkdir()
    for k in range(PER_SEED):
        export = _export(rng, exports / f"e{k}", rng.choice([0, 1, 3, 20, 200]))
        before = _tree(tmp_path, skip=work)
        conversations = _read(export, work)
        assert _tree(tmp_path, skip=work) == before, "written outside the unpacking folder"
        md = "".join(render(c, c.messages, {}, "md") for c in conversations)
        html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)
        for bad in ("<script", "<img", "href=\"javascript", "<b>", "<a "):
            assert bad not in html, (seed, k, bad)
    assert not list(tmp_path.parent.glob("escaped*")) and not list(tmp_path.glob("../x*"))


def test_random_exports_through_the_cli_never_exit_70(tmp_path, home):
    """A few of them the way a user runs them: exit 0, 1 or 2, one line for an error,
    outputs only in -o's folder."""
    rng = random.Random(99)
    out = tmp_path / "out"
    for k in range(6):
        export = _export(rng, tmp_path / "exports" / f"e{k}", rng.choice([1, 20, 200]))
        before = _tree(tmp_path, skip=out)
        got = run_cli("chat", str(export), "--no-store", "-o", str(out), "-q",
                      env={"TRANSCRIBE_HOME": str(home)}, timeout=120)
        assert got.returncode in (0, 1, 2), (k, got.stderr)
        assert "internal error" not in got.stderr and "Traceback" not in got.stderr
        assert _tree(tmp_path, skip=out) == before


@pytest.mark.parametrize("kind", ["whatsapp", "json", "html"])
def test_parsing_time_grows_in_proportion_to_the_export(kind, tmp_path):
    """Eight times the messages, about eight times the time (best of three: the machine
    is shared); a quadratic step would make it 64."""
    from transcribe import chats

    def make(n: int) -> Path:
        rng = random.Random(7)
        folder = tmp_path / f"{kind}{n}"
        folder.mkdir()
        name, text = {"whatsapp": ("WhatsApp Chat with Sam.txt", _whatsapp),
                      "json": ("result.json", lambda rng, n: _telegram_json(rng, n, True)),
                      "html": ("messages.html", _telegram_html)}[kind]
        (folder / name).write_text(text(rng, n), encoding="utf-8", errors="surrogatepass")
        return folder

    def best(folder: Path) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            try:
                chats.load(folder)
            except Exception as e:  # an InputError is fine here: the time is what counts
                assert type(e).__name__ == "InputError", e
            times.append(time.perf_counter() - start)
        return min(times)

    small, large = make(2_000), make(16_000)
    assert best(large) / max(best(small), 1e-4) < 24
