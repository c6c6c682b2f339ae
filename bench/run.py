"""Benchmarks: ratios against baselines measured in the same run, never asserts.

    python -m bench                 # everything (about 10 minutes on 2 cores)
    python -m bench --quick         # fewer repeats and a 12-note backlog
    python -m bench --only warm,accuracy
    python -m bench --memory        # only long notes' memory and speed (bench/memory.py)
    python -m bench --bigstore      # only search and the inbox at 50,000 notes (bench/bigstore.py)

The cold-CLI section compares with whisper-ctranslate2 when it is on PATH or
named by WHISPER_CTRANSLATE2 (it pins its own faster-whisper, so a venv of its
own is best: `python -m venv /tmp/wct && /tmp/wct/bin/pip install whisper-ctranslate2`).

Sections: warm per-note latency, cold CLI, the busy machine (warm and cold again while
spinners keep every core busy), backlog throughput, accuracy (WER), short notes (WER and
run-to-run changes on notes under 3 s, `shortnotes.py`), peak memory, long notes (1 to 180
minutes), a big store (50,000 notes). Contenders are interleaved and medians reported. The table goes
to stdout and the numbers to bench/results/<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_audio"
DEVSET = ROOT.parent / "shared" / "devset"
sys.path.insert(0, str(ROOT / "tests"))

from wer import wer  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SPEECH = ["PTT-20240312-WA0007.opus", "audio_2024-03-12_18-45-02.ogg", "New Recording 12.m4a",
          "AUD-20240311-WA0003.mp3", "recording-de.webm", "voicemail-8k.wav"]
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you " \
      "can do for your country."


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only",
                        default="warm,cold,busy,backlog,accuracy,shortnotes,memory,long,bigstore")
    parser.add_argument("--memory", action="store_true",
                        help="only the long-note section (bench/memory.py)")
    parser.add_argument("--minutes", default="1,10,60,180", help="long-note lengths")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--backlog", type=int)
    parser.add_argument("--bigstore", action="store_true",
                        help="only search and the inbox in a big store (bench/bigstore.py)")
    parser.add_argument("--notes", type=int, help="notes in the big store (default: 50000)")
    parser.add_argument("--live", action="store_true",
                        help="only the live text while recording: the capture queue's "
                             "high-water mark, pause-to-text lag (bench/live.py)")
    parser.add_argument("--live-minutes", type=float, default=2.0,
                        help="the live bench's recording length")
    parser.add_argument("--watcher", action="store_true",
                        help="only the watcher's idle CPU and latency (bench/watcher.py)")
    args = parser.parse_args()
    if args.live:
        from . import live

        live.main(args.live_minutes)
        return
    if args.watcher:
        from . import watcher

        watcher.main(args.quick)
        return
    repeats = args.repeats or (2 if args.quick else 5)
    backlog = args.backlog or (12 if args.quick else 50)
    sections = {"long"} if args.memory else {"bigstore"} if args.bigstore else \
        set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="transcribe-bench-"))
    os.environ.setdefault("TRANSCRIBE_HOME", str(work / "home"))
    results: dict = {"time": datetime.now().isoformat(timespec="seconds"),
                     "cpu_count": os.cpu_count()}
    try:
        from transcribe import Settings, Transcriber

        settings = Settings.load()
        transcriber = Transcriber(settings)
        model_dir = transcriber.local.resolved.location
        notes = make_notes(work)
        if "warm" in sections:
            results["warm"] = warm(transcriber, model_dir, notes, repeats)
        if "accuracy" in sections:
            results["accuracy"] = accuracy(settings, model_dir, notes, work)
        if "shortnotes" in sections:
            from .shortnotes import run as short_notes

            results["shortnotes"] = short_notes(settings, model_dir, work / "short",
                                                max(2, repeats - 2))
        if "cold" in sections:
            results["cold"] = cold(model_dir, notes, max(3, repeats))
        if "busy" in sections:
            results["busy"] = busy_machine(transcriber, model_dir, notes, max(3, repeats))
        if "backlog" in sections:
            results["backlog"] = backlog_throughput(settings, model_dir, work, backlog)
        if "memory" in sections:
            results["memory"] = memory(notes, work)
        if "long" in sections:
            from .memory import run as long_notes

            results["long"] = long_notes(work, [int(m) for m in args.minutes.split(",")])
        if "bigstore" in sections:
            from . import bigstore

            results["bigstore"] = bigstore.run(transcriber, work, args.notes or bigstore.NOTES,
                                               repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {path}")


# -- inputs --------------------------------------------------------------------------------

def make_notes(work: Path) -> dict[str, tuple[Path, str]]:
    """Notes of about 3, 10, 30 and 60 s built from the samples, with their references."""
    from transcribe.audio import decode

    refs = json.loads((SAMPLES / "references.json").read_text())
    english = [n for n in SPEECH if refs[n]["language"] == "en"]
    pieces = [(decode(SAMPLES / n).samples, refs[n]["text"]) for n in english]
    if (DEVSET / "jfk.flac").exists():
        pieces.append((decode(DEVSET / "jfk.flac").samples, JFK))

    def build(target_s: float) -> tuple[np.ndarray, str]:
        audio, texts, i = [], [], 0
        while True:
            samples, text = pieces[i % len(pieces)]
            if audio and (sum(len(a) for a in audio) + len(samples)) / 16000 > target_s:
                break
            audio.append(samples)
            texts.append(text)
            i += 1
        return np.concatenate(audio), " ".join(texts)

    notes = {}
    short = decode(SAMPLES / "New Recording 12.m4a").samples
    notes["3s"] = _write(work / "note-3s.wav", short[int(0.4 * 16000):int(3.4 * 16000)]), \
        "Remember to buy milk, eggs"
    for label, seconds in (("10s", 10), ("30s", 28), ("60s", 60)):
        samples, text = build(seconds)
        notes[label] = _write(work / f"note-{label}.wav", samples), text
    for path, text, _ in _real_notes():  # real speech, as sent (Ogg/Opus)
        if path.stem in ("fleurs-en-008", "fleurs-de-007", "fleurs-de-009"):
            notes[f"{len(decode(path).samples) / 16000:.0f}s real"] = path, text
    return notes


def _write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


# -- sections ------------------------------------------------------------------------------

def warm(transcriber, model_dir: str, notes: dict, repeats: int) -> dict:
    """Per-note latency in a long-lived process, against stock faster-whisper."""
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio, pad_or_trim

    from transcribe import Settings, Transcriber

    stock = WhisperModel(model_dir, device="cpu", compute_type="int8",
                         cpu_threads=os.cpu_count() or 1)
    unsplit = Transcriber(Settings.load().with_overrides(split=False))
    features = {str(path): stock.feature_extractor(decode_audio(str(path)))
                for path, _ in notes.values()}

    def stock_run(path):
        return " ".join(s.text for s in stock.transcribe(str(path))[0])

    def floor_run(path):
        stock.encode(pad_or_trim(features[str(path)][:, :3000]))

    contenders = {
        "stock transcribe()": stock_run,
        "one padded encoder pass": floor_run,
        "transcribe (ours)": lambda p: transcriber.transcribe(p).text,
        "ours, split off": lambda p: unsplit.transcribe(p).text,
    }
    for run in contenders.values():  # warm every path up once
        run(notes["3s"][0])
    table = {}
    print("\nwarm per-note latency (median of %d, seconds; ratio = / stock)" % repeats)
    print(f"{'note':>8} " + " ".join(f"{name:>26}" for name in contenders))
    for label, (path, _) in notes.items():
        times = {name: [] for name in contenders}
        for _ in range(repeats):
            for name, run in contenders.items():
                started = time.perf_counter()
                run(path)
                times[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(t) for name, t in times.items()}
        base = medians["stock transcribe()"]
        table[label] = {name: {"s": round(m, 3), "ratio": round(m / base, 3)}
                        for name, m in medians.items()}
        print(f"{label:>8} " + " ".join(f"{m:>18.3f} ({m / base:4.2f}x)"
                                        for m in medians.values()))
    return table


def accuracy(settings, model_dir: str, notes: dict, work: Path) -> dict:
    """WER per language on real speech (the FLEURS dev set and jfk), for ours, stock
    faster-whisper and ours in float32, with the notes where a phrase came out twice;
    then the same over the synthetic samples, the longer notes built from them, and
    the real and synthetic notes under white noise at 10 dB SNR."""
    from faster_whisper import WhisperModel

    from transcribe import Transcriber

    stock = WhisperModel(model_dir, device="cpu", compute_type="int8")
    configs = {
        "ours int8 (default)": Transcriber(settings).transcribe,
        "stock int8": lambda p: _Text(" ".join(s.text for s in stock.transcribe(str(p))[0])),
        "ours float32": Transcriber(settings.with_overrides(compute_type="float32")).transcribe,
        "ours, split off": Transcriber(settings.with_overrides(split=False)).transcribe,
    }
    real = _real_notes()
    refs = json.loads((SAMPLES / "references.json").read_text())
    synthetic = [(SAMPLES / n, refs[n]["text"], refs[n]["language"]) for n in SPEECH]
    synthetic += [(*notes[label], "en") for label in ("10s", "30s", "60s")]
    noisy = [(_noisy(path, work), text, lang) for path, text, lang in real[::3] + synthetic[:6]]
    languages = sorted({lang for _, _, lang in real})
    results: dict = {}
    print(f"\naccuracy on real speech: WER per language over {len(real)} notes (dev set and "
          "jfk), and the notes where a phrase came out twice")
    print(f"  {'':<22}" + "".join(f"{lang:>8}" for lang in languages)
          + f"{'all':>8}{'twice':>7}{'synthetic':>11}{'noisy':>8}")
    for name, run in configs.items():
        texts = {path: run(path).text for path, _, _ in real}
        per = {lang: _wer([n for n in real if n[2] == lang], texts.__getitem__)
               for lang in languages}
        twice = [path.name for path in texts if _said_twice(texts[path])]
        row = {"per_language": per, "all": _wer(real, texts.__getitem__), "said_twice": twice,
               "synthetic": _wer(synthetic, lambda p: run(p).text),
               "noisy": _wer(noisy, lambda p: run(p).text)}
        results[name] = row
        print(f"  {name:<22}" + "".join(f"{per[lang] * 100:7.1f}%" for lang in languages)
              + f"{row['all'] * 100:7.1f}%{len(twice):>7}{row['synthetic'] * 100:10.1f}%"
              f"{row['noisy'] * 100:7.1f}%")
    ours, base = results["ours int8 (default)"], results["stock int8"]
    worse = [lang for lang in languages if ours["per_language"][lang] > base["per_language"][lang]]
    print(f"  ours <= stock in every language: {'yes' if not worse else 'no: ' + ', '.join(worse)}")
    return results


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text


def _real_notes() -> list[tuple[Path, str, str]]:
    """The FLEURS dev set (../shared/devset/real) and jfk: (path, reference, language)."""
    notes = []
    manifest = DEVSET / "real" / "manifest.jsonl"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            if line.strip():
                item = json.loads(line)
                notes.append((DEVSET / "real" / item["file"], item["ref"], item["lang"]))
    if (DEVSET / "jfk.flac").exists():
        notes.append((DEVSET / "jfk.flac", JFK, "en"))
    return notes


def _said_twice(text: str) -> bool:
    from transcribe.quality import find_loops

    return bool(find_loops(text.split()))


def _noisy(path: Path, work: Path, snr_db: float = 10.0) -> Path:
    from transcribe.audio import decode

    samples = decode(path).samples
    noise = np.random.default_rng(len(samples)).standard_normal(len(samples))
    noise *= np.sqrt(np.mean(samples ** 2) / 10 ** (snr_db / 10)) / np.sqrt(np.mean(noise ** 2))
    return _write(work / f"noisy-{path.stem}.wav", (samples + noise).astype(np.float32))


def _wer(items, run) -> float:
    """Corpus WER over (path, reference, language) items: errors over reference
    words, after Whisper's own normalisers (English for English, basic for the
    rest, as the dev set's README asks) where whisper-normalizer is installed."""
    errors = words = 0
    for path, ref, language in items:
        ref_n, hyp_n = _normalised(ref, language), _normalised(run(path), language)
        n = len(ref_n.split())
        errors += wer(ref_n, hyp_n) * n
        words += n
    return round(errors / words, 4) if words else 0.0


def _normalised(text: str, language: str) -> str:
    try:
        from whisper_normalizer.basic import BasicTextNormalizer
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        return text
    return (EnglishTextNormalizer() if language == "en" else BasicTextNormalizer())(text)


def cold(model_dir: str, notes: dict, repeats: int) -> dict:
    """A new process per note: our CLI, whisper-ctranslate2, a minimal script; and --help."""
    note = str(notes["10s"][0])
    minimal = _minimal_script(model_dir)
    commands = {
        "transcribe note": [sys.executable, "-m", "transcribe", "--no-store", note],
        "minimal faster-whisper script": [sys.executable, "-c", minimal, note],
    }
    wct = os.environ.get("WHISPER_CTRANSLATE2") or shutil.which("whisper-ctranslate2")
    if wct:
        commands["whisper-ctranslate2"] = [wct, "--model_directory", model_dir,
                                           "--compute_type", "int8", "--output_dir",
                                           tempfile.mkdtemp(), note]
    help_cmd = [sys.executable, "-m", "transcribe", "--help"]
    times = {name: [] for name in commands}
    help_times = []
    for _ in range(repeats):
        for name, cmd in commands.items():
            times[name].append(_timed(cmd))
        help_times.append(_timed(help_cmd))
    # The same command while `transcribe watch` runs: the CLI hands the note over.
    inbox = Path(tempfile.mkdtemp(prefix="empty-inbox-"))
    watcher = subprocess.Popen([sys.executable, "-m", "transcribe", "watch", str(inbox), "-o",
                                str(inbox / "out")], stderr=subprocess.PIPE, text=True)
    for line in watcher.stderr:
        if "loading model" in line:
            break
    time.sleep(1.0)  # the load itself
    name = "transcribe note, watcher running"
    times[name] = [_timed(commands["transcribe note"]) for _ in range(repeats)]
    watcher.terminate()
    watcher.wait()
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians.get("whisper-ctranslate2", medians["minimal faster-whisper script"])
    print("\ncold CLI on a 10 s note (median of %d; ratio = / %s)" % (
        repeats, "whisper-ctranslate2" if wct else "minimal script (whisper-ctranslate2 "
        "not installed: pip install whisper-ctranslate2)"))
    for name, m in medians.items():
        print(f"  {name:<32} {m:6.2f} s  {m / base:4.2f}x")
    print(f"  {'transcribe --help':<32} {statistics.median(help_times):6.3f} s")
    return {"seconds": medians, "help_s": statistics.median(help_times),
            "baseline": "whisper-ctranslate2" if wct else "minimal script"}


def busy_machine(transcriber, model_dir: str, notes: dict, repeats: int) -> dict:
    """Warm ours against stock faster-whisper (its defaults, `vad_filter=True`) on the
    dev set, each note once, quiet and then while a spinner per core runs; and the
    cold CLI against whisper-ctranslate2 (else the minimal script) on the 10 s note,
    the same two ways. Medians; ratio = ours / theirs."""
    from faster_whisper import WhisperModel

    stock = WhisperModel(model_dir, device="cpu", compute_type="int8")

    def stock_run(path):
        return " ".join(s.text for s in stock.transcribe(str(path), vad_filter=True)[0])

    contenders = {"ours": lambda p: transcriber.transcribe(p).text, "stock": stock_run}
    real = [path for path, _, _ in _real_notes()] or [path for path, _ in notes.values()]
    for run in contenders.values():
        run(real[0])
    result: dict = {"notes": len(real)}
    print(f"\nbusy machine: {os.cpu_count()} spinner(s) keep every core busy")
    for condition in ("quiet", "busy"):
        with _spinners(condition == "busy"):
            times = {name: [] for name in contenders}
            for path in real:
                for name, run in contenders.items():
                    times[name].append(_seconds(run, path))
        medians = {name: statistics.median(t) for name, t in times.items()}
        ratio = medians["ours"] / medians["stock"]
        result[f"warm_{condition}"] = {**{k: round(v, 3) for k, v in medians.items()},
                                       "ratio": round(ratio, 3)}
        print(f"  warm, dev set ({len(real)} notes), {condition:<5}  ours {medians['ours']:6.2f} s"
              f"  stock {medians['stock']:6.2f} s  {ratio:4.2f}x")
    note = str(notes["10s"][0])
    commands = {"ours": [sys.executable, "-m", "transcribe", "--no-store", note]}
    wct = os.environ.get("WHISPER_CTRANSLATE2") or shutil.which("whisper-ctranslate2")
    peer = "whisper-ctranslate2" if wct else "minimal script"
    commands[peer] = ([wct, "--model_directory", model_dir, "--compute_type", "int8",
                       "--output_dir", tempfile.mkdtemp(), note] if wct else
                      [sys.executable, "-c", _minimal_script(model_dir), note])
    for condition in ("quiet", "busy"):
        with _spinners(condition == "busy"):
            times = {name: [] for name in commands}
            for _ in range(repeats):
                for name, cmd in commands.items():
                    times[name].append(_timed(cmd))
        medians = {name: statistics.median(t) for name, t in times.items()}
        ratio = medians["ours"] / medians[peer]
        result[f"cold_{condition}"] = {"ours": round(medians["ours"], 3),
                                       peer: round(medians[peer], 3), "peer": peer,
                                       "ratio": round(ratio, 3)}
        print(f"  cold CLI, 10 s note, {condition:<5} (median of {repeats})  ours "
              f"{medians['ours']:6.2f} s  {peer} {medians[peer]:6.2f} s  {ratio:4.2f}x")
    return result


def _seconds(run, path) -> float:
    started = time.perf_counter()
    run(path)
    return time.perf_counter() - started


@contextmanager
def _spinners(on: bool):
    """One process per core spinning in Python, as busy as a process can be, if `on`."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range((os.cpu_count() or 1) if on else 0)]
    try:
        time.sleep(1.0 if on else 0.0)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _minimal_script(model_dir: str) -> str:
    return ("import sys; from faster_whisper import WhisperModel; "
            f"m = WhisperModel({model_dir!r}, device='cpu', compute_type='int8'); "
            "print(' '.join(s.text for s in m.transcribe(sys.argv[1])[0]))")


def _timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def backlog_throughput(settings, model_dir: str, work: Path, count: int) -> dict:
    """Audio seconds per wall second: the watcher on `count` short notes vs a stock loop."""
    from faster_whisper import WhisperModel

    from transcribe.audio import decode
    from transcribe.watcher import WatchOptions, Watcher

    inbox = work / f"backlog-{count}"
    inbox.mkdir()
    sources = [decode(SAMPLES / n).samples for n in SPEECH]
    total_audio = 0.0
    for i in range(count):
        samples = np.concatenate([sources[i % len(sources)],
                                  np.zeros(160 * (i + 1), dtype=np.float32)])  # distinct notes
        _write(inbox / f"note-{i:03d}.wav", samples)
        total_audio += len(samples) / 16000
    stock = WhisperModel(model_dir, device="cpu", compute_type="int8")
    started = time.perf_counter()
    for path in sorted(inbox.iterdir()):
        list(stock.transcribe(str(path))[0])
    stock_s = time.perf_counter() - started

    from transcribe.store import Store

    watcher = Watcher(settings, WatchOptions(dirs=[inbox], output_dir=work / "out",
                                             settle_s=0.0, poll_s=0.05),
                      store=Store(work / f"backlog-{count}.db"))
    watcher.local_warm = watcher._transcriber({}).local.load()  # the service's model load
    started = time.perf_counter()
    watcher.scan()
    while watcher.store.counts()["done"] + watcher.store.counts()["failed"] < count:
        watcher.scan()
        watcher.work_one()
    ours_s = time.perf_counter() - started
    watcher.close()
    result = {"notes": count, "audio_s": round(total_audio, 1),
              "stock_audio_s_per_s": round(total_audio / stock_s, 2),
              "watcher_audio_s_per_s": round(total_audio / ours_s, 2),
              "ratio": round(stock_s / ours_s, 2)}
    print(f"\nbacklog of {count} notes ({total_audio:.0f} s of audio): watcher "
          f"{result['watcher_audio_s_per_s']} audio-s/s, sequential stock loop "
          f"{result['stock_audio_s_per_s']} audio-s/s: {result['ratio']}x")
    return result


def memory(notes: dict, work: Path) -> dict:
    """Peak RSS of the CLI on a 60 s note (on a first run, which joins and quantizes
    the model, and on a later one), and of a watcher over the bench notes."""
    if not Path("/usr/bin/time").exists():
        print("\npeak RSS: skipped, GNU time is not installed (apt install time)")
        return {}
    first_home = work / "memory-first-run"

    def cli_run(home: Path) -> float:
        cli = subprocess.Popen([*_rss_prefix(), sys.executable, "-m", "transcribe",
                                "--no-store", str(notes["60s"][0])], stdout=subprocess.DEVNULL,
                               env=dict(os.environ, TRANSCRIBE_HOME=str(home)))
        return _wait_rss_mb(cli)

    first_mb = cli_run(first_home)
    cli_mb = cli_run(first_home)
    inbox = work / "memory-inbox"
    inbox.mkdir()
    for path, _ in notes.values():
        shutil.copy(path, inbox / path.name)
    home = work / "memory-home"
    shutil.copytree(Path(os.environ["TRANSCRIBE_HOME"]) / "cache", home / "cache")
    watcher = subprocess.Popen([*_rss_prefix(), sys.executable, "-m", "transcribe", "watch",
                                str(inbox), "-o",
                                str(work / "memory-out"), "--settle", "0.2", "--poll", "0.2"],
                               env=dict(os.environ, TRANSCRIBE_HOME=str(home)),
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and \
            len(list((work / "memory-out").rglob("*.txt"))) < len(notes):
        time.sleep(0.5)
    subprocess.run(["pkill", "-TERM", "-P", str(watcher.pid)])  # the watcher, under time
    watcher_mb = _wait_rss_mb(watcher)
    print(f"\npeak RSS: CLI on a 60 s note {cli_mb:.0f} MB ({first_mb:.0f} MB on the first "
          f"run, which prepares the model); watcher over {len(notes)} notes {watcher_mb:.0f} MB")
    return {"cli_mb": round(cli_mb), "cli_first_run_mb": round(first_mb),
            "watcher_mb": round(watcher_mb)}


def _wait_rss_mb(proc: subprocess.Popen) -> float:
    """Wait for a child started under GNU time (`_rss_prefix`) and read its peak RSS.

    (The kernel's own count for a child, from wait4, also holds the pages it
    shared with this large process between fork and exec.)"""
    proc.wait()
    report = Path(proc.args[4])
    return int(report.read_text().split()[-1]) / 1024


def _rss_prefix() -> list[str]:
    return ["/usr/bin/time", "-f", "%M", "-o", tempfile.mktemp(suffix=".rss")]


if __name__ == "__main__":
    main()
