"""The `transcribe` command: a thin layer over the core.

Data goes to stdout; progress and diagnostics go to stderr. Exit codes are
documented in README.md and come from `transcribe.errors`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .errors import (EXIT_CLOUD, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
                     CloudError, InputError,
                     OutputError, TranscribeError)

log = logging.getLogger("transcribe")

FORMATS = ("txt", "srt", "vtt", "json")
# Files at least this long get a progress bar (when stderr is a terminal).
PROGRESS_MIN_S = 30.0

COMMANDS_HELP = """\
commands:
  transcribe FILE...        transcribe voice notes (this page)
  transcribe watch DIR...   transcribe every voice note that lands in DIR, exactly once
  transcribe status         the watcher's queue: pending, running, done, failed
  transcribe chat EXPORT    a WhatsApp/Telegram chat with its voice notes as text
  transcribe search WORDS   search every transcript kept in the store
  transcribe tui            the terminal UI: inbox, search, record, settings
  transcribe record         record a note from the microphone and transcribe it
  transcribe devices        list the microphones
  transcribe models         list the models usable here, and those to download
  transcribe models pull NAME   download a hub model (small, large-v3, ...) for offline use
  transcribe cloud status   what the cloud fallback would do, and with what consent
  transcribe cloud log      every upload ever made: time, file hash, host, bytes, outcome

exit codes:
  0 all files transcribed whole                        2 usage or settings error
  1 some inputs failed, or were truncated or damaged (transcribed as far as readable)
  3 model unavailable        4 cloud error            5 microphone error
  6 another watcher already runs on this store
  70 internal error          130 interrupted
"""


BARE_USAGE = """\
usage: transcribe FILE...       print what voice notes say (`-` reads standard input)
       transcribe tui           the inbox: add, record, search, read
       transcribe watch DIR     transcribe every note that lands in a folder
       transcribe --help        every command and option
"""


class Diagnostics:
    """Everything the CLI says on stderr; colour only on a terminal."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._console = None

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    def error(self, message: str) -> None:
        self._say("error: ", "bold red", message)

    def warning(self, message: str) -> None:
        self._say("warning: ", "yellow", message)

    def info(self, message: str) -> None:
        if not self.quiet:
            self._say("", "", message, "dim")

    def _say(self, prefix: str, prefix_style: str, message: str, style: str = "") -> None:
        if self.tty:
            from rich.text import Text

            self.console.print(Text.assemble((prefix, prefix_style), (message, style)))
        else:
            print(f"{prefix}{message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transcribe",
        description="Transcribe voice messages on this machine with a quantized Whisper model.",
        epilog=COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path,
                        help="voice notes: ogg/opus, m4a, mp3, webm, wav, flac, ...")
    add_transcribe_options(parser)
    parser.add_argument("-V", "--version", action="version", version=f"transcribe {__version__}")
    return parser


def add_transcribe_options(parser: argparse.ArgumentParser, *,
                           compute_device: bool = True) -> None:
    """The options of every command that transcribes: output, model, cloud.

    `transcribe record` uses --device for the microphone, so it goes without
    the engine's --device.
    """
    out = parser.add_argument_group("output")
    out.add_argument("-f", "--format", default="txt", metavar="FORMAT",
                     help="txt, srt, vtt or json (default: txt); with --output-dir several, "
                          "comma-separated (txt,srt), or all")
    out.add_argument("--json", dest="format", action="store_const", const="json",
                     help="same as --format json: one JSON object per file (JSON Lines)")
    out.add_argument("-o", "--output-dir", type=Path,
                     help="write FILE's transcript next to its name in this folder "
                          "instead of printing it")
    out.add_argument("--word-timestamps", action="store_true", default=None,
                     help="include per-word timings in JSON")
    model = parser.add_argument_group("model")
    model.add_argument("-m", "--model",
                       help="installed model name, CTranslate2 directory, or hub name "
                            "(default: base)")
    model.add_argument("-l", "--language", help="language code such as en or de "
                                                "(default: detect)")
    model.add_argument("--languages", metavar="CODES",
                       help="detect only among these, such as pt,en (default: any)")
    model.add_argument("--task", choices=("transcribe", "translate"),
                       help="translate: English text from speech in any language")
    model.add_argument("--initial-prompt", help="text that sets style and spelling, such as "
                                                "names that will come up")
    model.add_argument("--hotwords", help="words or names to favour")
    model.add_argument("--beam-size", type=int, help="beam search width (default: 5)")
    if compute_device:
        model.add_argument("--device", dest="compute_device", choices=("auto", "cpu", "cuda"),
                           help="where the model runs (default: auto)")
    model.add_argument("--compute-type", help="CTranslate2 compute type (default: int8)")
    model.add_argument("--threads", dest="cpu_threads", type=int,
                       help="CPU threads (default: all available)")
    cloud = parser.add_argument_group("cloud (off unless you allow it)")
    cloud.add_argument("--cloud", dest="cloud_allow", action="store_true", default=None,
                       help="allow the cloud fallback for this run")
    cloud.add_argument("--no-cloud", dest="cloud_allow", action="store_false",
                       help="forbid the cloud for this run, whatever the settings say")
    cloud.add_argument("--engine", choices=("auto", "local", "cloud"), default="auto",
                       help="auto: local, cloud only when allowed and needed (default); "
                            "local: never the cloud; cloud: the cloud for these files "
                            "(needs consent)")
    parser.add_argument("--no-store", dest="store", action="store_false", default=None,
                        help="do not keep the transcripts in the store (`transcribe search`, "
                             "the TUI)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _writable_terminal()
    command = COMMANDS.get(argv[0]) if argv else None
    if not argv:
        print(BARE_USAGE, file=sys.stderr, end="")
        return EXIT_USAGE
    try:
        if command is not None:
            return command(argv[1:])
        return transcribe_command(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TranscribeError as e:
        Diagnostics().error(str(e))
        return e.exit_code
    except Exception as e:  # a bug of ours: one line, the traceback only when asked for
        if log.isEnabledFor(logging.INFO):
            log.exception("internal error")
        Diagnostics().error(f"internal error: {type(e).__name__}: {e} (run with -v for the "
                            "traceback, and please report it)")
        return EXIT_INTERNAL


def _writable_terminal() -> None:
    """A transcript holds letters a terminal set to ASCII or Latin-1 cannot show:
    they are written as `?` there, not the end of the run. (stderr already writes
    what it cannot show as a backslash escape, which names a file exactly.)"""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")


def transcribe_command(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _output_formats(parser, args)
    _setup_logging(args.verbose, args.quiet)
    return transcribe_paths(args.files, args, Diagnostics(args.quiet))


def _output_formats(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--format as a list in `args.formats` (`all` is every format); `args.format` is the
    first. Several need --output-dir: printed one after another they could not be told apart."""
    from .settings import check_formats

    named = FORMATS if args.format.strip().lower() == "all" else args.format.split(",")
    args.formats = check_formats(list(named), "--format")
    if len(args.formats) > 1 and args.output_dir is None:
        parser.error(f"--format {args.format}: several formats need --output-dir")
    args.format = args.formats[0]


def settings_from_args(args: argparse.Namespace):
    from .settings import Settings

    return Settings.load().with_overrides(
        model=args.model, language=args.language, languages=args.languages, task=args.task,
        initial_prompt=args.initial_prompt, hotwords=args.hotwords, beam_size=args.beam_size,
        device=getattr(args, "compute_device", None), compute_type=args.compute_type, cpu_threads=args.cpu_threads,
        word_timestamps=args.word_timestamps, store=args.store,
    ).with_cloud(allow=args.cloud_allow)


def transcribe_paths(paths: list[Path], args: argparse.Namespace, diag: Diagnostics) -> int:
    """Transcribe each file and emit it; report bad ones and go on. Returns the exit code."""
    from .pipeline import Transcriber

    settings = settings_from_args(args)
    if args.output_dir is not None:
        _check_output_dir(args.output_dir)
    if Path("-") in paths:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="transcribe-stdin-") as folder:
            args.stdin_file = _read_stdin(Path(folder))
            return transcribe_paths([args.stdin_file if p == Path("-") else p for p in paths],
                                    args, diag)
    transcriber = Transcriber(settings)
    if args.engine != "cloud" and not transcriber.use_service(on_decline=diag.info):
        transcriber.local.preload()
    keeper = _Keeper(settings, diag)
    tally = _Tally()
    many = len(paths) > 1
    try:
        for n, path in enumerate(paths):
            live = _LiveText(_header(path, n == 0) if many else "", args)
            try:
                transcript = _transcribe_one(transcriber, path, args, diag, tally, live)
            except KeyboardInterrupt:
                _emit_interrupted(live, path, args, settings, diag, many=many, first=n == 0)
                raise
            if transcript is None:
                continue
            if transcript.notes:  # one line per file, however many things it has to say
                diag.warning(f"{path}: {'; '.join(transcript.notes)}")
            if transcript.truncated or transcript.damaged:
                tally.partial += 1
            if transcript.engine == "cloud":
                diag.info(f"{path}: transcribed by {transcript.provider} "
                          f"({transcript.cloud_reason})")
            if path == getattr(args, "stdin_file", None):
                transcript.file = "-"  # not kept: no file to go back to
            else:
                # first: a disk too full for the output loses nothing; a note someone fixed
                # (`transcribe tui`) comes back with the fixes laid over the new text
                transcript = keeper.keep(path, transcript)
            if not live.started or transcript.engine != "local":  # the cloud's text is new
                _emit(transcript, path, args, settings.word_timestamps, header=many,
                      first=n == 0, diag=diag, kept=keeper.kept)
    finally:
        transcriber.close()
        keeper.close()
    return tally.exit_code(len(paths), diag)


class _Tally:
    """What went wrong in a batch, and the exit code it makes (README, "Exit codes")."""

    def __init__(self) -> None:
        self.failed = self.cloud_failed = self.internal = self.partial = 0

    def exit_code(self, total: int, diag: Diagnostics) -> int:
        failed = self.failed + self.cloud_failed + self.internal
        if failed:
            diag.info(f"{failed} of {total} file(s) failed")
        if self.partial:
            diag.info(f"{self.partial} of {total} file(s) truncated or damaged, "
                      "transcribed as far as they could be read")
        if self.internal:
            return EXIT_INTERNAL
        if self.cloud_failed:
            return EXIT_CLOUD
        return EXIT_INPUT if self.failed or self.partial else EXIT_OK


def _transcribe_one(transcriber, path: Path, args: argparse.Namespace, diag: Diagnostics,
                    tally: _Tally, live: _LiveText):
    """One file's transcript, or None after one error line: a bad file never stops a batch.

    Errors that would fail every later file the same way (no model, no cloud
    consent, settings) still stop it."""
    try:
        with _progress(diag, path, args.format, live) as on_progress:
            return transcriber.transcribe(path, on_progress=on_progress, engine=args.engine)
    except InputError as e:
        diag.error(_folder_hint(path) if path.is_dir() else str(e))
        tally.failed += 1
    except CloudError as e:
        if e.fatal:
            raise
        diag.error(f"{path}: {e}")
        tally.cloud_failed += 1
    except (TranscribeError, KeyboardInterrupt):
        raise
    except Exception as e:  # a bug of ours on this file: say so, go on with the next
        if log.isEnabledFor(logging.INFO):
            log.exception("%s: internal error", path)
        diag.error(f"{path}: internal error: {type(e).__name__}: {e} (run with -v for the "
                   "traceback, and please report it)")
        tally.internal += 1
    return None


def _folder_hint(path: Path) -> str:
    return (f"{path}: a folder, not a voice note; transcribe the notes in it with "
            f"`transcribe {path}/*`, or every note that lands there with "
            f"`transcribe watch {path}`")


class _Keeper:
    """Keeps the CLI's transcripts in the store, unless `store = false` or --no-store."""

    def __init__(self, settings, diag: Diagnostics) -> None:
        self.settings, self.diag = settings, diag
        self.store = None
        self.kept = False  # the last transcript is in the store

    def keep(self, path: Path, transcript):
        """Keep `transcript`; return it as the store now has it (with the fixes of a note
        someone corrected: `Store.correct`)."""
        self.kept = False
        if not self.settings.store:
            return transcript
        from .audio import file_sha256
        from .messaging import origin
        from .store import Store, StoreDamaged

        try:
            if self.store is None:
                self.store = Store.open_default(self.settings.paths.data_dir)
            where = origin(path)
            job = self.store.record(str(path.resolve()), file_sha256(path),
                                    path.stat().st_size, transcript, sent_at=where.sent_at,
                                    app=where.app)
            self.kept = True
            fixed = self.store.transcript(job.id, transcript.task)
            return fixed if fixed is not None and fixed.corrected else transcript
        except (OSError, sqlite3.Error, StoreDamaged) as e:
            self.diag.warning(f"{path}: transcribed, but not kept in the store ({e})")
        return transcript

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _emit_interrupted(live: _LiveText, path: Path, args: argparse.Namespace, settings,
                      diag: Diagnostics, *, many: bool, first: bool) -> None:
    """Ctrl-C mid-note: the segments already final are written where the transcript
    would have gone (a pipe, a file, --output-dir), as a terminal already shows them;
    marked truncated. Not kept in the store: the note is not done."""
    from .transcript import Transcript, join_segments

    if live.started or not live.segments:
        return
    end = live.segments[-1].end
    transcript = Transcript(
        file=str(path), text=join_segments(live.segments), language=None, duration=end,
        segments=list(live.segments), engine="local", model=settings.model, truncated=True,
        notes=[f"interrupted: the text of the first {end:.0f} s only"])
    diag.warning(f"{path}: {transcript.notes[0]}")
    _emit(transcript, path, args, settings.word_timestamps, header=many, first=first,
          diag=diag)


def _read_stdin(folder: Path) -> Path:
    """`transcribe -`: standard input, copied to a file named `stdin` (the decoder
    seeks). It is not kept in the store: there is no file to go back to."""
    import shutil

    if sys.stdin is None or sys.stdin.isatty():
        raise InputError(Path("-"), "standard input is a terminal; pipe a note in: "
                         "cat note.ogg | transcribe -")
    path = folder / "stdin"
    with path.open("wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out)
    return path


def _check_output_dir(out_dir: Path) -> None:
    """Fail before a long note is transcribed, not after, when --output-dir cannot
    take a file (read-only, not a folder, permission denied)."""
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise OutputError(f"{out_dir}: cannot write transcripts there "
                          f"({e.strerror or e})") from None


def _emit(transcript, path: Path, args, words: bool, *, header: bool, first: bool,
          diag: Diagnostics, kept: bool = False) -> None:
    from .writers import render, write_outputs

    if transcript.no_speech:
        diag.info(f"{path}: no speech found")
    if args.output_dir is not None:
        try:
            written = write_outputs(transcript, args.output_dir, args.formats, source=path,
                                    words=words)
        except OSError as e:  # a disk that filled up, a folder made read-only meanwhile
            again = "; the transcript is kept in the store" if kept else ""
            raise OutputError(f"{path}: transcribed, but its transcript cannot be written to "
                              f"{args.output_dir} ({e.strerror or e}){again}") from None
        for name in written:
            diag.info(f"{path} -> {name}")
        return
    text = render(transcript, args.format, words=words,
                  encoding=sys.stdout.encoding or "utf-8")
    if header and args.format != "json":
        text = _header(path, first) + text
    sys.stdout.write(text)
    sys.stdout.flush()


class _download_progress:
    """One rich progress line on stderr for a model download, when stderr is a terminal."""

    def __init__(self, diag: Diagnostics, name: str) -> None:
        self.diag, self.name = diag, name
        self.bar = None
        self.task = None

    def __enter__(self) -> Callable[[int, int], None]:
        return self.update

    def update(self, done: int, total: int) -> None:
        if not self.diag.tty or self.diag.quiet:
            return
        if self.bar is None:
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(),
                                console=self.diag.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.name, total=total or None)
        self.bar.update(self.task, completed=done, total=total or None)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _header(path: Path, first: bool) -> str:
    return f"{'' if first else chr(10)}==> {path} <==\n"


class _LiveText:
    """Text on a terminal as it is transcribed: a line per segment as each becomes
    final, so a long recording can be read while the rest is still being decoded.

    Only for txt on a terminal (stdout a TTY, no --output-dir), of a note long
    enough for a progress bar; anything else (a short note, a pipe, a file, other
    formats) gets the whole transcript at the end, as before.
    While the progress bar is up, rich draws these lines above it. A loop cut
    out at the end was already shown; the warning line says what was cut."""

    def __init__(self, header: str, args: argparse.Namespace) -> None:
        self.on = (args.format == "txt" and args.output_dir is None and sys.stdout.isatty())
        self.header = header
        self.started = False
        self.segments: list = []  # every final one so far: what a Ctrl-C still writes

    def add(self, segments, long: bool) -> None:
        self.segments.extend(segments)
        if long:
            self.show(segments)

    def show(self, segments) -> None:
        lines = [seg.text.strip() for seg in segments if seg.text.strip()] if self.on else []
        if not lines:
            return
        if not self.started:
            sys.stdout.write(self.header)
            self.started = True
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()


class _progress:
    """A rich progress bar on stderr for long files, when stderr is a terminal,
    and the live text (`_LiveText`) on stdout."""

    def __init__(self, diag: Diagnostics, path: Path, fmt: str, live: _LiveText) -> None:
        self.diag, self.path, self.fmt, self.live = diag, path, fmt, live
        self.bar = None
        self.task = None

    def __enter__(self) -> Callable[[float, float, list], None]:
        return self.update

    def update(self, done: float, total: float, segments=()) -> None:
        self._bar(done, total)
        self.live.add(segments, total >= PROGRESS_MIN_S)
        if segments:
            log.debug("%s: %.1f of %.1f s transcribed", self.path, done, total)

    def _bar(self, done: float, total: float) -> None:
        if not self.diag.tty or self.diag.quiet or total < PROGRESS_MIN_S:
            return
        if self.bar is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                                TimeRemainingColumn(), console=self.diag.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.path.name, total=total)
        self.bar.update(self.task, completed=done)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def models_command(argv: list[str]) -> int:
    if argv[:1] == ["pull"]:
        return models_pull_command(argv[1:])
    parser = argparse.ArgumentParser(
        prog="transcribe models", description="List the Whisper models usable here, then "
        "those faster-whisper can download (`transcribe models pull NAME`).")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    args = parser.parse_args(argv)
    from .models import available, downloadable
    from .settings import Settings

    settings = Settings.load()
    rows = available(settings.paths.models_dir, default=settings.model)
    hub = [r for r in downloadable(settings.paths.models_dir, default=settings.model)
           if r.status != "downloaded"]  # (those are among the ready ones)
    if args.json:
        import dataclasses
        import json

        ready = {r.name for r in rows}
        for row in rows + [r for r in hub if r.name not in ready]:
            print(json.dumps(dataclasses.asdict(row)))
        return EXIT_OK
    width = max(len(r.name) for r in rows + hub) + 2
    for row in rows:
        mark = "*" if row.default else " "
        print(f"{mark} {row.name:<{width}}{row.status:<34}{row.source:<10} {row.location}")
    print(f"\n  {'to download':<{width}}{'size':>9}  speed on 2 cores")
    for row in hub:
        note = "  (installed from a package)" if row.status == "installed" else ""
        line = f"  {row.name:<{width}}{_size(row.size_mb):>9}  {row.speed or '?':<7}{note}"
        print(line.rstrip())
    print("(* default; change it with --model or `model = ...` in "
          f"{settings.paths.config_file}; `transcribe models pull NAME` downloads one)",
          file=sys.stderr)
    return EXIT_OK


def _size(mb: int | None) -> str:
    if mb is None:
        return "?"
    return f"~{mb} MB" if mb < 1000 else f"~{mb / 1000:.1f} GB"


def models_pull_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="transcribe models pull", description="Download a faster-whisper model from the "
        "model hub into the cache, so that --model NAME works offline.")
    parser.add_argument("name", metavar="NAME", help="small, large-v3, ... (see `transcribe "
                        "models`), or a hub id such as Systran/faster-whisper-small")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from .models import pull
    from .settings import Settings

    settings = Settings.load()
    diag = Diagnostics(args.quiet)
    with _download_progress(diag, args.name) as on_progress:
        folder = pull(args.name, settings.paths.models_dir, on_progress)
    diag.info(f"{args.name} is ready: `--model {args.name}` works offline now")
    print(folder)
    return EXIT_OK


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose:
        level = logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def cloud_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="transcribe cloud",
                                     description="Cloud consent and the upload log.")
    parser.add_argument("action", choices=("status", "log"))
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    import json

    from .policy import CloudPolicy
    from .settings import Settings

    settings = Settings.load()
    policy = CloudPolicy(settings)
    if args.action == "status":
        cloud = settings.cloud
        status = {
            "allowed": cloud.allow,
            "base_url": cloud.base_url,
            "host": cloud.host,
            "model": cloud.model,
            "api_key": "set" if cloud.key() else f"missing (set {cloud.api_key_env} or "
                                                 "TRANSCRIBE_CLOUD_API_KEY)",
            "on_low_confidence": cloud.on_low_confidence,
            "max_upload_bytes": cloud.max_upload_bytes,
            "upload_log": str(policy.upload_log),
        }
        if args.json:
            print(json.dumps(status))
        else:
            print("cloud use is " + ("ALLOWED: audio may be sent to " + cloud.host
                                     if cloud.allow else "off: no audio leaves this machine"))
            for key, value in status.items():
                print(f"  {key:<18} {value}")
        return EXIT_OK
    entries, damaged = _upload_log(policy.upload_log)
    if damaged:
        print(f"{policy.upload_log}: skipped {damaged} damaged line(s)", file=sys.stderr)
    if args.json:
        print(json.dumps(entries, ensure_ascii=False))  # one array; [] when nothing was sent
        return EXIT_OK
    if not entries:
        print("no uploads: no audio has been sent to a cloud provider", file=sys.stderr)
        return EXIT_OK
    for entry in entries:
        print(f"{entry['time']}  {entry['outcome']:<8.8} {entry['host']}  "
              f"{entry['bytes']:>9} B  {entry['sha256'][:12]}  {entry['file']}  "
              f"({entry['reason']})")
    return EXIT_OK


def _upload_log(path: Path) -> tuple[list[dict], int]:
    """The upload log's entries, and how many lines were cut short (a crash mid-write)."""
    import json

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], 0
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            pass
    return entries, len(lines) - len(entries)


def watch_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="transcribe watch",
        description="Transcribe every voice note that lands in these folders, exactly once. "
                    "Runs until SIGINT or SIGTERM; logs plain lines to stderr.")
    parser.add_argument("dirs", nargs="*", metavar="DIR", type=Path,
                        help="folders to watch (default: [watch] dirs in config.toml)")
    parser.add_argument("-o", "--output-dir", type=Path,
                        help="where transcripts go (default: <data dir>/transcripts)")
    parser.add_argument("-f", "--format", dest="formats",
                        help="comma-separated: txt,srt,vtt,json (default: txt)")
    parser.add_argument("--no-recursive", action="store_true", help="only the folders themselves")
    parser.add_argument("--settle", type=float, dest="settle_s",
                        help="seconds a file must stay unchanged before it is taken (default 2)")
    parser.add_argument("--grace", type=float, dest="grace_s",
                        help="seconds a file that does not decode yet may still be arriving "
                             "(default 30)")
    parser.add_argument("--poll", type=float, dest="poll_s",
                        help="seconds between walks of local folders that are polled, "
                             "with --no-notify (default 1)")
    parser.add_argument("--poll-remote", type=float, dest="remote_poll_s",
                        help="seconds between walks of folders on network and FUSE mounts "
                             "(nfs, cifs/smb, sshfs, fuse.*, 9p), where change notifications "
                             "do not arrive (default 10)")
    parser.add_argument("--no-notify", action="store_true",
                        help="poll every folder instead of listening for the OS's change "
                             "notifications (for a mount that is not detected as remote)")
    parser.add_argument("--rescan", type=float, dest="rescan_s", default=300.0,
                        help="seconds between full walks that catch what a notification "
                             "missed (default 300)")
    parser.add_argument("-m", "--model", help="model name or directory")
    parser.add_argument("-l", "--language", help="language code (default: detect)")
    parser.add_argument("--languages", metavar="CODES",
                        help="detect only among these, such as pt,en (default: any)")
    parser.add_argument("--task", choices=("transcribe", "translate"),
                        help="translate: English text from speech in any language")
    parser.add_argument("--beam-size", type=int, help="beam search width (default: 5)")
    parser.add_argument("--threads", dest="cpu_threads", type=int,
                        help="CPU threads (default: the cores this process may use)")
    parser.add_argument("--initial-prompt", help="text that sets style and spelling")
    parser.add_argument("--hotwords", help="words or names to favour")
    parser.add_argument("--cloud", dest="cloud_allow", action="store_true", default=None,
                        help="allow the cloud fallback")
    parser.add_argument("--no-cloud", dest="cloud_allow", action="store_false")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    service = parser.add_mutually_exclusive_group()
    service.add_argument("--install-service", action="store_true",
                         help="write a systemd user unit that runs this `transcribe watch` "
                              "with these arguments, and say how to start it")
    service.add_argument("--print-service", action="store_true",
                         help="print that unit instead of writing it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    if not args.verbose:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    from .settings import Settings, check_formats
    from .watcher import WatchOptions, serve

    settings = (Settings.load().with_overrides(model=args.model, language=args.language,
                                               languages=args.languages, task=args.task,
                                               beam_size=args.beam_size,
                                               cpu_threads=args.cpu_threads,
                                               hotwords=args.hotwords,
                                               initial_prompt=args.initial_prompt)
                .with_cloud(allow=args.cloud_allow)
                .with_watch(settle_s=args.settle_s, grace_s=args.grace_s, poll_s=args.poll_s,
                            remote_poll_s=args.remote_poll_s, formats=args.formats))
    watch = settings.watch
    dirs = args.dirs or [Path(d).expanduser() for d in watch.dirs]
    if not dirs:
        parser.error("name the folders to watch, or set `dirs` under [watch] in "
                     f"{settings.paths.config_file}")
    output_dir = args.output_dir or (Path(watch.output_dir).expanduser() if watch.output_dir
                                     else settings.paths.data_dir / "transcripts")
    _make_watched_folders(dirs, Diagnostics())
    options = WatchOptions(dirs=dirs, output_dir=output_dir,
                           formats=check_formats(watch.formats.split(","), "watch.formats"),
                           recursive=not args.no_recursive, settle_s=watch.settle_s,
                           grace_s=watch.grace_s, poll_s=watch.poll_s,
                           remote_poll_s=watch.remote_poll_s,
                           cloud_retry_s=watch.cloud_retry_s, notify=not args.no_notify,
                           rescan_s=args.rescan_s)
    if args.install_service or args.print_service:
        return _service(args, options)
    serve(settings, options)
    return EXIT_OK


def _make_watched_folders(dirs: list[Path], diag: Diagnostics) -> None:
    """A folder to watch that does not exist yet (`~/VoiceNotes` on a fresh home) is
    made, and said; one that cannot be made is left for WatchOptions to refuse."""
    for folder in dirs:
        if os.path.lexists(folder):
            continue
        try:
            Path(folder).mkdir(parents=True)
        except OSError:
            continue
        diag.info(f"created {folder} (it did not exist): voice notes saved there are "
                  "transcribed")


def _service(args: argparse.Namespace, options) -> int:
    """`watch --install-service` / `--print-service`: the unit for this very command line,
    once its settings and folders have been checked."""
    from . import service

    watch_args = [str(d) for d in options.dirs] if args.dirs else []
    if args.output_dir is not None:
        watch_args += ["-o", str(options.output_dir)]
    for flag, value in (("-f", args.formats), ("--settle", args.settle_s),
                        ("--grace", args.grace_s), ("--poll", args.poll_s),
                        ("--poll-remote", args.remote_poll_s),
                        ("--rescan", args.rescan_s if args.rescan_s != 300.0 else None),
                        ("-m", args.model), ("-l", args.language),
                        ("--languages", args.languages), ("--task", args.task),
                        ("--beam-size", args.beam_size), ("--threads", args.cpu_threads),
                        ("--initial-prompt", args.initial_prompt),
                        ("--hotwords", args.hotwords)):
        if value is not None:
            watch_args += [flag, str(value)]
    if args.no_recursive:
        watch_args.append("--no-recursive")
    if args.no_notify:
        watch_args.append("--no-notify")
    if args.cloud_allow is not None:
        watch_args.append("--cloud" if args.cloud_allow else "--no-cloud")
    watch_args += ["-v"] * args.verbose
    if args.print_service:
        sys.stdout.write(service.unit_text(watch_args))
        return EXIT_OK
    path = service.install(watch_args)
    name = service.UNIT_NAME.removesuffix(".service")
    print(f"wrote {path}\n"
          "start it now and at every login with:\n"
          "  systemctl --user daemon-reload\n"
          f"  systemctl --user enable --now {name}\n"
          "keep it running while you are logged out:\n"
          '  loginctl enable-linger "$USER"\n'
          "follow what it does:\n"
          f"  journalctl --user -u {name} -f")
    return EXIT_OK


def status_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="transcribe status",
                                     description="The watcher's queue: pending, running, done, "
                                                 "failed, waiting for the cloud.")
    parser.add_argument("--json", action="store_true", help="counts and jobs as one JSON object")
    parser.add_argument("--all", action="store_true", help="list done jobs too")
    args = parser.parse_args(argv)
    import dataclasses
    import json

    from .settings import Settings
    from .store import STATES, Store, readable

    settings = Settings.load()
    store = Store.open_default(settings.paths.data_dir)
    try:
        counts = store.counts()
        states = STATES if args.all else tuple(st for st in STATES if st != "done")
        jobs = store.jobs(states, limit=200)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"counts": counts, "jobs": [dataclasses.asdict(j) for j in jobs]}))
        return EXIT_OK
    print("  ".join(f"{state.replace('_', ' ')}: {n}" for state, n in counts.items()))
    for job in jobs:
        detail = job.error or ""
        if job.state == "running" and job.progress is not None:
            detail = f"{job.progress:.0%}"
        print(f"{job.state:<14} {readable(job.path)}" + (f"  ({detail})" if detail else ""))
    return EXIT_OK


def record_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="transcribe record",
        description="Record a voice note from the microphone, save it as Ogg/Opus, and "
                    "transcribe it. Stop with Enter or Ctrl-C; what was recorded is kept.")
    rec = parser.add_argument_group("recording")
    rec.add_argument("--device", help="input device name or index (`transcribe devices`)")
    rec.add_argument("--seconds", type=float, help="stop after this many seconds")
    rec.add_argument("--stop-after-silence", type=float, metavar="SECONDS",
                     help="stop once it has been quiet this long after you spoke")
    rec.add_argument("--samplerate", type=int, help="capture rate (default: the device's)")
    rec.add_argument("--save", type=Path, metavar="PATH",
                     help="where the recording goes (default: <data dir>/recordings/)")
    rec.add_argument("--no-transcribe", action="store_true", help="only record")
    rec.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                     help="show the text so far at each pause while recording (default: on "
                          "a terminal); the final text is the saved file's, as ever")
    add_transcribe_options(parser, compute_device=False)
    args = parser.parse_args(argv)
    _output_formats(parser, args)
    _setup_logging(args.verbose, args.quiet)
    diag = Diagnostics(args.quiet)
    from .recorder import default_recording_path, record

    settings = settings_from_args(args)  # a wrong setting stops us before the recording
    path = args.save or default_recording_path(settings.paths.data_dir / "recordings")
    stop = threading.Event()
    if sys.stdin.isatty():
        threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    meter = _LevelMeter(diag)
    live = None
    if (diag.tty if args.live is None else args.live) and not (args.no_transcribe or diag.quiet):
        from .live import LiveText

        live = LiveText(settings, meter.text)

    def started(device: str, rate: int) -> None:
        diag.info(f"recording from {device} ({rate} Hz) to {path}"
                  + (" (Enter or Ctrl-C to stop)" if diag.tty else ""))

    # Ctrl-C stops the recording the way Enter does, through `stop`: a
    # KeyboardInterrupt raised inside PyAV's or PortAudio's callbacks can be
    # swallowed there. A second Ctrl-C interrupts for real. (A SIGINT the shell
    # ignores, as for a background job, stays ignored.)
    ctrl_c = threading.Event()

    def on_ctrl_c(signum, frame) -> None:
        if ctrl_c.is_set():
            raise KeyboardInterrupt
        ctrl_c.set()
        stop.set()

    import signal

    takes_ctrl_c = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if takes_ctrl_c:
        signal.signal(signal.SIGINT, on_ctrl_c)
    interrupted = False
    try:
        recording = record(path, device=args.device, samplerate=args.samplerate,
                           max_seconds=args.seconds, stop_after_silence=args.stop_after_silence,
                           stop=stop, on_level=meter, on_start=started, live=live)
    except KeyboardInterrupt:
        interrupted = True
        recording = None
    finally:
        if takes_ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if ctrl_c.is_set():
        interrupted = True
        recording = None
    meter.done()
    if recording is None:
        if not path.exists():
            return EXIT_INTERRUPTED
        diag.info(f"stopped; the recording is saved in {path}")
    else:
        diag.info(f"recorded {recording.duration:.1f} s to {path}")
    if args.no_transcribe or interrupted:
        return EXIT_INTERRUPTED if interrupted else EXIT_OK
    return transcribe_paths([path], args, diag)


class _LevelMeter:
    """Elapsed time and input level on one stderr line, on a terminal only; the live
    text's lines above it (from the live decoder's thread, hence the lock)."""

    BAR = " ▁▂▃▄▅▆▇█"

    def __init__(self, diag: Diagnostics) -> None:
        self.diag = diag
        self.shown = False
        self.last = 0.0
        self.line = ""
        self.lock = threading.Lock()

    def __call__(self, elapsed: float, level: float) -> None:
        if not self.diag.tty or self.diag.quiet or elapsed - self.last < 0.1:
            return
        self.last = elapsed
        filled = int(max(0.0, min(1.0, (level + 60) / 60)) * 20)
        bar = "█" * filled + "·" * (20 - filled)
        minutes, seconds = divmod(int(elapsed), 60)
        with self.lock:
            self.line = f"\r● REC {minutes:02d}:{seconds:02d}  {bar} {level:5.0f} dBFS "
            sys.stderr.write(self.line)
            sys.stderr.flush()
            self.shown = True

    def text(self, words: str) -> None:
        """A piece of live text: above the meter on a terminal, a line of its own
        elsewhere."""
        if self.diag.quiet:
            return
        with self.lock:
            if self.diag.tty:
                sys.stderr.write(f"\r\x1b[K  {words}\n{self.line}")
            else:
                sys.stderr.write(f"live: {words}\n")
            sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def devices_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="transcribe devices",
                                     description="List the microphones (input devices).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import json

    from .errors import MicrophoneError
    from .recorder import input_devices

    devices = input_devices()
    if not devices:
        raise MicrophoneError("no input device found: connect a microphone, or check that "
                              "the sound system (ALSA, PulseAudio, PipeWire) offers one")
    for d in devices:
        if args.json:
            print(json.dumps(d))
        else:
            print(f"{'*' if d['default'] else ' '} {d['index']:>3}  {d['name']}  "
                  f"({d['channels']} ch, {d['default_samplerate']:.0f} Hz)")
    return EXIT_OK


def search_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="transcribe search",
        description='Search every kept transcript, best matches first, a page at a time. '
                    'Words match with or without accents; "quoted phrases", AND, OR, NOT and '
                    'prefix* work. How many notes match, and how to see the next page, goes '
                    'to stderr.')
    parser.add_argument("words", nargs="+")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per match, each with the total of matches and "
                             "this page's offset and limit")
    parser.add_argument("-n", "--limit", type=_not_negative, default=20,
                        help="matches per page (default: 20; 0: only say how many match)")
    parser.add_argument("--offset", type=_not_negative, default=0,
                        help="skip this many of the best matches: the next page starts at "
                             "the last one's offset + limit")
    parser.add_argument("--chat", metavar="NAME",
                        help="only voice notes of this chat (`transcribe chat`), any case")
    parser.add_argument("--from", dest="sender", metavar="NAME",
                        help="only voice notes this person sent in a chat, any case")
    args = parser.parse_args(argv)
    import json

    from .messaging import sent_for_people
    from .settings import Settings
    from .store import HIGHLIGHT, Store, readable

    query = " ".join(args.words)
    store = Store.open_default(Settings.load().paths.data_dir)
    try:
        total = store.count_matches(query, chat=args.chat, sender=args.sender)
        hits = store.search(query, limit=args.limit, offset=args.offset, chat=args.chat,
                            sender=args.sender) if total else []
    finally:
        store.close()
    tty = sys.stdout.isatty() and not args.json
    start, end = ("\x1b[1;33m", "\x1b[0m") if tty else ("**", "**")
    page = {"total": total, "offset": args.offset, "limit": args.limit}
    for hit in hits:
        snippet = hit.snippet.replace(HIGHLIGHT[0], start).replace(HIGHLIGHT[1], end)
        if args.json:
            utf8 = readable(hit.job.path) == hit.job.path  # else \u-escape the bytes
            print(json.dumps({"file": hit.job.path, "sent_at": hit.job.sent_at,
                              "app": hit.job.app, "chat": hit.job.chat,
                              "sender": hit.job.sender, "snippet": snippet, "job": hit.job.id,
                              "corrected": bool(hit.summary and hit.summary["corrected"]),
                              **page}, ensure_ascii=not utf8))
        else:
            print(f"{readable(hit.job.path)}  ({sent_for_people(hit.job.sent_at) or '?'})"
                  f"{_chat_of(hit.job)}"
                  f"\n    {snippet}")
    sys.stdout.flush()  # the matches, then what they were of
    print(_matches_shown(total, args.offset, len(hits), args.limit), file=sys.stderr)
    return EXIT_OK


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is below 0")
    return value


def _matches_shown(total: int, offset: int, shown: int, limit: int) -> str:
    """ "matches 21-40 of 1,204; the next 20: --offset 40", "3 matches", "no matches"."""
    if not total:
        return "no matches"
    count = f"{total:,} match{'es' if total != 1 else ''}"
    if not shown:
        return f"{count}; none past --offset {offset}" if offset else count
    if shown == total:
        return count
    said = f"matches {offset + 1:,}-{offset + shown:,} of {total:,}"
    if offset + shown < total:
        said += f"; the next {min(limit, total - offset - shown):,}: --offset {offset + shown}"
    return said


def _chat_of(job) -> str:
    """ "  Sam, from Alice" for a chat's voice note; nothing for a loose one."""
    if job.chat is None:
        return ""
    return f"  {job.chat}" + (f", from {job.sender}" if job.sender else "")


def tui_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="transcribe tui",
                                     description="The terminal UI: inbox, search, record, "
                                                 "settings. The same app runs as "
                                                 "`python -m tui`.")
    parser.add_argument("--note", type=int, metavar="ID",
                        help="open on this note (what clicking a desktop notification does)")
    args = parser.parse_args(argv)
    from tui.app import run as run_tui

    run_tui(open_job=args.note)
    return EXIT_OK


def chat_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="transcribe chat",
        description="A chat export with every voice note transcribed in place: WhatsApp "
                    "(.zip, .txt or folder), Telegram (a chat's or the whole account's "
                    "export folder, result.json or messages.html).",
        conflict_handler="resolve")
    add_transcribe_options(parser)
    parser.add_argument("export", type=Path, help="the export: a .zip, a folder or its chat "
                                                  "text")
    out = parser.add_argument_group("output")
    out.add_argument("--output", help="the conversation's file (one chat), or - for stdout "
                                      "(default: CHAT.transcribed.md beside the export)")
    out.add_argument("-o", "--output-dir", type=Path,
                     help="write the conversations into this folder instead (created), "
                          "named after their chats")
    out.add_argument("-f", "--format", dest="chat_format", choices=("md", "txt", "json"),
                     default="md", help="md (default), txt, or json: one object per message")
    out.add_argument("--json", dest="chat_format", action="store_const", const="json",
                     help="same as --format json")
    parser.add_argument("--word-timestamps", action="store_true", default=None,
                        help=argparse.SUPPRESS)  # a transcript's option: not a chat's
    parser.add_argument("--name", help="only this chat of an export holding several (a "
                                       "whole Telegram account's), any case")
    parser.add_argument("--since", help="only messages from this date on (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    from .chat_render import run_chat

    return run_chat(args, settings_from_args(args), Diagnostics(args.quiet))


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "tui": tui_command,
    "search": search_command,
    "record": record_command,
    "devices": devices_command,
    "models": models_command,
    "cloud": cloud_command,
    "watch": watch_command,
    "status": status_command,
    "chat": chat_command,
}


def run() -> None:
    try:
        code = main()
    except BrokenPipeError:
        code = EXIT_OK
    _exit(code)


def _exit(code: int) -> None:
    """Exit now, whatever a background thread is doing.

    A daemon thread still inside C++ at interpreter shutdown (the model load
    that `transcribe bad.m4a` started and no file needed) is killed while it
    unwinds: "terminate called without an active exception", exit 134. Seen 3 of
    3 runs under load on 2 cores, 0 of 24 idle. So when such a thread is alive,
    flush and leave without the interpreter's shutdown."""
    import threading

    if not any(t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
