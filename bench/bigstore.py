"""A big store: does search say how many notes match, and is the inbox quick, at
50,000 notes?

    python -m bench --only bigstore          # within the whole run
    python -m bench --bigstore [--notes N]   # this section alone (N = 50000 by default)

The numbers go to stdout and, with the rest of the run's, to bench/results/<time>.json.

The store is built from real transcripts: the sample notes (the real FLEURS and
jfk clips, and the synthetic ones) are transcribed once by the real model, then
laid out as N notes, each a cut of one transcript (at least half its words, from
a random place), sometimes followed by another of the same language, with its
own id, content hash, path, app and sent time (spread over two years; one in
five from a chat). Each note keeps its source's full transcript JSON (segments
and words), so the file is as big as a real store of that many notes of these
lengths (3 to 20 s; longer notes make a bigger file).

Reported, each against the same thing in a store of one note measured in the
same run (medians; the ratio is what a big store costs):

- through the store, in milliseconds: opening it (as every command does, its
  integrity check included), a search's count and one page (the commonest
  word's first page of 20 notes and a page halfway down, and a rarer word's),
  and the inbox's first page;
- whole processes, in seconds and as a ratio: `transcribe search WORD`, and a
  new `transcribe tui` until its first screen of notes is drawn (Textual's
  headless driver, the terminal 120x40, imports included).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_audio"
NOTES = 50_000
PAGE = 20  # `transcribe search`'s default page
PAGE_TUI = 100  # the TUI's (tui.app.PAGE)
APPS = ("WhatsApp", "Telegram", None, "Voice Memos")
CHATS = ("Sam", "Family", "Work", "Alice")

# A child process: open the TUI over TRANSCRIBE_HOME headless and print the seconds
# from its start (imports included) to the first screen drawn with notes in it.
FIRST_SCREEN = """\
import asyncio, time
started = time.perf_counter()
from tui.app import TranscribeApp

async def main():
    app = TranscribeApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.query_one("#inbox").row_count, "the inbox is empty"
        print(time.perf_counter() - started)

asyncio.run(main())
"""


def run(transcriber, work: Path, notes: int = NOTES, repeats: int = 5) -> dict:
    sources = real_transcripts(transcriber)
    small_home, big_home = work / "bigstore-1", work / "bigstore-n"
    small = _store_path(small_home)
    big = _store_path(big_home)
    started = time.perf_counter()
    fill(small, sources, 1)
    fill(big, sources, notes)
    built_s = time.perf_counter() - started
    common, rare = _words(big)
    print(f"\nbig store: {notes:,} notes from {len(sources)} real transcripts "
          f"({big.stat().st_size / 2**20:.0f} MB, built in {built_s:.0f} s); "
          f"ratio = / the same in a store of 1 note")
    rows = {"opening the store": _compare(_open_store, small, big, repeats)}
    for label, query, offset in ((f"search {common!r}: count and first page", common, 0),
                                 (f"search {common!r}: count and a page halfway", common, None),
                                 (f"search {rare!r}: count and first page", rare, 0)):
        rows[label] = _search_row(small, big, query, offset, repeats)
    rows["inbox: first page"] = _compare(_inbox_page, small, big, repeats)
    for label, row in rows.items():
        total = f"  ({row['total']:,} notes match)" if "total" in row else ""
        print(f"  store, {label:<44} {row['big_s'] * 1000:7.1f} ms  "
              f"(1 note: {row['small_s'] * 1000:5.1f} ms){total}")
    processes = {f"`transcribe search {common}`": lambda home: _cli_search(home, common),
                 "`transcribe tui`, first screen of the inbox": _first_screen}
    for label, measure in processes.items():
        rows[label] = row = _compare(measure, small_home, big_home, max(3, repeats // 2))
        print(f"  {label:<51} {row['big_s']:7.2f} s   (1 note: {row['small_s']:5.2f} s)  "
              f"{row['ratio']:4.2f}x")
    return {"notes": notes, "mb": round(big.stat().st_size / 2**20), "rows": rows}


def real_transcripts(transcriber) -> list:
    """The real model's transcripts of the sample notes that have speech."""
    refs = json.loads((SAMPLES / "references.json").read_text())
    real = json.loads((SAMPLES / "real" / "references.json").read_text())
    paths = [SAMPLES / n for n, r in refs.items() if r["text"]]
    paths += [SAMPLES / "real" / n for n in sorted(real) if not n.startswith("jfk-")][:8]
    paths += [SAMPLES / "real" / "jfk-PTT-20240101-WA0001.opus"]
    found = [transcriber.transcribe(path) for path in paths]
    return [t for t in found if t.text.strip()]


def fill(path: Path, sources: list, count: int, seed: int = 25) -> None:
    """A store at `path` (made by `Store`, so its schema is the product's) with `count`
    notes cut from `sources`, written in one transaction."""
    from transcribe.store import Store

    Store(path).close()
    rng = random.Random(seed)
    by_language: dict[str, list] = {}
    for t in sources:
        by_language.setdefault(t.language, []).append(t)
    data = {id(t): json.dumps(t.to_dict(words=True), ensure_ascii=False) for t in sources}
    first = datetime(2024, 1, 1)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for i in range(count):
        source = sources[i % len(sources)]
        text = _cut(source.text, rng)
        if rng.random() < 0.3:
            text += " " + _cut(rng.choice(by_language[source.language]).text, rng)
        sent = first + timedelta(seconds=rng.randrange(2 * 365 * 86400))
        app = APPS[i % len(APPS)]
        chat = CHATS[i % len(CHATS)] if i % 5 == 0 else None
        now = sent.timestamp() + 60
        job = db.execute(
            "INSERT INTO jobs(sha256, path, root, size, state, attempts, sent_at, app, options, "
            "created_at, updated_at, chat, sender) VALUES (?,?,?,?,'done',1,?,?,'{}',?,?,?,?)",
            (hashlib.sha256(f"{seed}-{i}".encode()).hexdigest(),
             f"/home/someone/VoiceNotes/{sent:%Y-%m}/note-{i:06d}.opus", "/home/someone/VoiceNotes",
             20_000 + i, sent.isoformat(timespec="seconds"), app, now, now, chat,
             chat and rng.choice(("Alice", "Bob", None)))).lastrowid
        db.execute("INSERT INTO transcripts(job_id, text, language, duration, engine, model, "
                   "no_speech, data, created_at) VALUES (?,?,?,?,?,?,0,?,?)",
                   (job, text, source.language, source.duration, source.engine, source.model,
                    data[id(source)], now))
    db.execute("COMMIT")
    db.close()


def _cut(text: str, rng: random.Random) -> str:
    """At least half of the words of `text`, from a random place."""
    words = text.split()
    keep = rng.randint((len(words) + 1) // 2, len(words))
    start = rng.randint(0, len(words) - keep)
    return " ".join(words[start:start + keep])


def _words(path: Path) -> tuple[str, str]:
    """The word most notes hold, and one that a few hold (both at least 3 letters)."""
    db = sqlite3.connect(path)
    notes = Counter()
    for (text,) in db.execute("SELECT text FROM transcripts LIMIT 5000"):
        notes.update({w for w in re.findall(r"\w{3,}", text.lower())})
    db.close()
    ranked = notes.most_common()
    return ranked[0][0], next((w for w, n in reversed(ranked) if n >= 2), ranked[-1][0])


def _store_path(home: Path) -> Path:
    return home / "data" / "transcribe.db"


def _search_row(small: Path, big: Path, query: str, offset: int | None, repeats: int) -> dict:
    """Count and one page of `query` through the store, in each store."""
    from transcribe.store import Store

    times, total = {}, 0
    for name, path in (("small", small), ("big", big)):
        store = Store(path)
        found = store.count_matches(query)
        total = found if name == "big" else total
        at = found // 2 if offset is None else offset
        times[name] = _median(lambda: (store.count_matches(query),
                                       store.search(query, limit=PAGE, offset=at)), repeats)
        store.close()
    return _row(times["small"], times["big"], total=total)


def _compare(measure, small, big, repeats: int) -> dict:
    """`measure(small)` and `measure(big)` (each returns seconds) interleaved; medians."""
    small_s, big_s = [], []
    for _ in range(repeats):
        small_s.append(measure(small))
        big_s.append(measure(big))
    return _row(statistics.median(small_s), statistics.median(big_s))


def _open_store(path: Path) -> float:
    """Opening the store, as every command and the TUI does (its checks included)."""
    from transcribe.store import Store

    started = time.perf_counter()
    Store(path).close()
    return time.perf_counter() - started


def _inbox_page(path: Path) -> float:
    from transcribe.store import Store

    store = Store(path)
    started = time.perf_counter()
    store.inbox(limit=PAGE_TUI)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def _cli_search(home: Path, word: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "transcribe", "search", word], cwd=ROOT,
                   env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - started


def _first_screen(home: Path) -> float:
    out = subprocess.run([sys.executable, "-c", FIRST_SCREEN], cwd=ROOT, env=_env(home),
                         capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def _env(home: Path) -> dict:
    return dict(os.environ, TRANSCRIBE_HOME=str(home), PYTHONPATH=str(ROOT))


def _median(call, repeats: int) -> float:
    call()  # warm: the first read of a store pays for its pages
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _row(small_s: float, big_s: float, **extra) -> dict:
    return {"small_s": round(small_s, 5), "big_s": round(big_s, 5),
            "ratio": round(big_s / small_s, 2), **extra}
