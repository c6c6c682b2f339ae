"""Output writers: txt, srt, vtt and json, and safe files for them.

Transcript files are written to a temporary name and renamed into place, so
nobody ever sees half of one. An output directory keeps a small manifest of
which audio file each transcript came from, so a transcript of one note never
overwrites the transcript of a different note that happens to share its name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .transcript import Transcript

FORMATS = ("txt", "srt", "vtt", "json")
MANIFEST = ".transcribe-outputs.json"


def render(transcript: Transcript, fmt: str, *, words: bool = False) -> str:
    if fmt == "txt":
        return transcript.text + "\n" if transcript.text else ""
    if fmt == "srt":
        return _srt(transcript)
    if fmt == "vtt":
        return _vtt(transcript)
    if fmt == "json":
        data = transcript.to_dict(words=words)
        text = json.dumps(data, ensure_ascii=False)
        if _has_surrogates(text):  # a file name that is not UTF-8: escape it
            text = json.dumps(data)
        return text + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def timestamp(seconds: float, separator: str = ",") -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _srt(transcript: Transcript) -> str:
    blocks = []
    for i, seg in enumerate(transcript.segments, 1):
        blocks.append(f"{i}\n{timestamp(seg.start)} --> {timestamp(seg.end)}\n{seg.text}\n")
    return "\n".join(blocks)


def _vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for seg in transcript.segments:
        blocks.append(f"{timestamp(seg.start, '.')} --> {timestamp(seg.end, '.')}\n{seg.text}\n")
    return "\n".join(blocks)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_outputs(transcript: Transcript, out_dir: Path, formats: list[str], *,
                  source: Path, relative_dir: Path = Path("."),
                  words: bool = False) -> list[Path]:
    """Write one file per format under `out_dir/relative_dir`; return their paths."""
    target_dir = out_dir / relative_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    owner = str(Path(source).resolve())
    written = []
    with _locked_manifest(target_dir) as manifest:
        for fmt in formats:
            path = target_dir / _free_name(target_dir, source, fmt, owner, manifest)
            write_atomic(path, render(transcript, fmt, words=words))
            manifest[path.name] = owner
            written.append(path)
    return written


def _free_name(target_dir: Path, source: Path, fmt: str, owner: str,
               manifest: dict[str, str]) -> str:
    """`note.txt`, unless that belongs to another note: then `note.ogg.txt`, then hashed."""
    import hashlib

    digest = hashlib.sha256(owner.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    for name in (f"{source.stem}.{fmt}", f"{source.name}.{fmt}", f"{source.stem}-{digest}.{fmt}"):
        if manifest.get(name) == owner or not (target_dir / name).exists() and name not in manifest:
            return name
    return f"{source.stem}-{digest}.{fmt}"


@contextlib.contextmanager
def _locked_manifest(target_dir: Path) -> Iterator[dict[str, str]]:
    manifest_path = target_dir / MANIFEST
    with (target_dir / f"{MANIFEST}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        except (OSError, ValueError):
            manifest = {}
        before = dict(manifest)
        yield manifest
        if manifest != before:
            write_atomic(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
