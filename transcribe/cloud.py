"""The cloud engine: an OpenAI-compatible `POST {base_url}/audio/transcriptions`.

Only `policy.py` builds a `CloudClient`, and only when the user has allowed
cloud use. Every upload attempt is appended to the upload log, which the user
can read with `transcribe cloud log`.

Offline is decided by the request itself: the host name is resolved under a
deadline (the sync httpx client does not bound DNS) and connections have a
short connect timeout. An offline verdict is remembered for a while
(`[cloud] offline_ttl_s`) so a batch does not wait once per file.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import io
import json
import logging
import math
import os
import random
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .audio import SAMPLE_RATE, Audio, AudioStream, OpusEncoder, file_sha256
from .errors import CloudError, InputError, one_line
from .settings import CloudSettings, Secret
from .transcript import Segment, Transcript, join_segments

log = logging.getLogger(__name__)
# httpcore's debug trace (`-vv`) prints each response's headers, which a provider can
# fill with the key it was sent; httpx's own INFO line (method, URL, status) stays.
logging.getLogger("httpcore").setLevel(logging.INFO)

RETRY_AFTER_CAP_S = 30.0
BACKOFF_BASE_S = 0.5
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
# A transcript is kilobytes (open-asr-server's verbose_json for the 8 s sample note is
# 413 bytes; with OpenAI's token lists a few times that, so 4 MB is many hours of
# speech); an error says what it has to in its first 64 kB. Before these caps a 1 GB
# 200 body was read whole, and a 256 MB error body retried 4 times peaked at 2.9 GB.
MAX_ANSWER_BYTES = 4 * 2**20
MAX_ERROR_BYTES = 64 * 2**10
# A split cuts at the quietest 150 ms in the half part before where the size
# would cut (or the middle half, when a part is halved): cut at 3.72 s, through
# "ten minutes", the sample WhatsApp note came back from tiny.en as "about to
# death. minute said"; the pauses of that (espeak-ng) note are 1.2-1.7 s away.
PAUSE_S = 0.15
CUT_FRAME = SAMPLE_RATE // 100
# A part is cut at a pause no further back than this from where its size would cut
# it (or, halved, this far around its middle): the most audio a split holds, 1.9 MB
# of float32, however long the note. Short parts look in half their length, as before.
LOOK_BACK_S = 30.0
# Key-shaped tokens a provider may echo back: OpenAI's (sk-..., sk-proj-...) and Groq's
# (gsk_...). OpenAI's 401 says "Incorrect API key provided: sk-...".
KEY_SHAPED = re.compile(r"(?<![A-Za-z0-9])(?:sk-|gsk_)[A-Za-z0-9_*\-]{6,}")
REDACTED = "[redacted]"
# A key this short is redacted only where it stands alone: inside words it would cut
# into text ("abc" in "abcdef"); a whole-word echo of it still goes.
SHORT_KEY = 6
# One request's deadline, start to end, when [cloud] total_timeout is 0: two minutes
# for the provider to answer, plus 10 s per MB uploaded (an uplink of 100 kB/s). A
# guess, not a measurement: no provider is reachable from where this was written.
TOTAL_TIMEOUT_BASE_S = 120.0
TOTAL_TIMEOUT_PER_MB_S = 10.0
# What OpenAI's endpoint accepts by name; anything else is re-encoded first.
UPLOAD_SUFFIXES = {".flac", ".m4a", ".mp3", ".mp4", ".mpeg", ".mpga", ".oga", ".ogg", ".wav",
                   ".webm"}
LANGUAGE_NAMES = {
    "english": "en", "german": "de", "spanish": "es", "french": "fr", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "russian": "ru", "ukrainian": "uk", "polish": "pl",
    "turkish": "tr", "arabic": "ar", "chinese": "zh", "japanese": "ja", "korean": "ko",
    "hindi": "hi", "swedish": "sv", "czech": "cs", "greek": "el", "hebrew": "he",
}


class Offline(CloudError):
    """The provider cannot be reached from here right now."""


class CloudAuthError(CloudError):
    """The provider refused the key: every later file would fail the same way."""

    fatal = True


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    offset: float = 0.0  # where in the note it starts, seconds
    seconds: float | None = None  # how long it is, when known before it is sent


class CloudClient:
    """Talks to one OpenAI-compatible provider, with retries and an upload log."""

    name = "cloud"

    def __init__(self, settings: CloudSettings, log_path: Path, transport=None,
                 resolve_timeout: float | None = None) -> None:
        import httpx

        self.settings = settings
        self.log_path = log_path
        self._key: Secret | None = settings.key()
        self._resolve_timeout = resolve_timeout or settings.connect_timeout
        self._offline_until = 0.0
        self._lock = threading.Lock()
        timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout,
                                write=settings.read_timeout)
        # No keep-alive: every request opens its own connection, which _Deadline sees.
        self._http = httpx.Client(base_url=settings.base_url.rstrip("/") + "/", timeout=timeout,
                                  transport=transport, follow_redirects=False,
                                  limits=httpx.Limits(max_keepalive_connections=0))

    @property
    def host(self) -> str:
        return self.settings.host

    def close(self) -> None:
        self._http.close()

    def is_offline(self) -> bool:
        return time.monotonic() < self._offline_until

    def transcribe(self, path: Path, audio: Audio | AudioStream | None, *, language: str | None,
                   prompt: str | None, reason: str, task: str = "transcribe",
                   sha256: str | None = None) -> Transcript:
        """Upload one note (re-encoded or split when over the size limit), part by
        part as each is made; a stream is read to its end (its duration).
        `sha256`, the file's, if the caller has it, names the note in the log."""
        if self._key is None:
            raise CloudError(f"cloud use is allowed but no API key is set: set "
                             f"{self.settings.api_key_env or 'TRANSCRIBE_CLOUD_API_KEY'} or "
                             "TRANSCRIBE_CLOUD_API_KEY")
        if self.is_offline():
            raise Offline(f"{self.host} was unreachable moments ago; not retrying yet")
        self._check_online()
        uploads = prepare_uploads(path, audio, self.settings.max_upload_bytes)
        sha = sha256 or file_sha256(path)
        segments: list[Segment] = []
        languages: list[tuple[str, int]] = []
        sent = 0
        try:
            for upload in uploads:
                segments.extend(self._upload(path, sha, upload, languages, language=language,
                                             prompt=prompt, reason=reason, task=task))
                sent += 1
                del upload  # before the next part is made: one part's bytes at a time
        except (CloudError, InputError) as e:  # a part refused, or the note gone meanwhile
            if not sent:
                raise
            after = (f"after {sent} part(s) of the note had gone up: no transcript is made "
                     "of some parts only")
            if isinstance(e, InputError):
                raise type(e)(e.path, f"{e.reason} ({after})") from None
            raise type(e)(f"{e} ({after})") from None
        language_found = _most_heard(languages)
        if isinstance(audio, AudioStream):
            audio.finish()  # its duration, when it went up as it is and was never read
        if audio is not None:
            segments = _within_note(segments, audio.duration)
        text = join_segments(segments)
        duration = audio.duration if audio is not None else (segments[-1].end if segments else 0)
        return Transcript(
            file=str(path), text=text, language=language_found or language,
            duration=duration, segments=segments, engine="cloud", model=self.settings.model,
            no_speech=not text, task=task, provider=self.host, cloud_reason=reason,
        )

    def _upload(self, path: Path, sha: str, upload: Upload,
                languages: list[tuple[str, int]], *, language: str | None,
                prompt: str | None, reason: str, task: str) -> list[Segment]:
        """One upload, logged: its segments placed in the note; the language it heard
        and how much text came back in it are added to `languages`."""
        try:
            body = self._post(upload, language=language, prompt=prompt, task=task)
            found = _segments(body, upload, self.host)
        except CloudError as e:
            self._log(path, sha, upload, f"failed: {e}", reason)
            raise
        self._log(path, sha, upload, "ok", reason)
        heard = _language_code(body.get("language"))
        if heard:
            languages.append((heard, sum(len(s.text) for s in found)))
        return found

    def _check_online(self) -> None:
        """Resolve the host under a deadline: a resolver that never answers means offline."""
        import httpx

        url = httpx.URL(self.settings.base_url)
        host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="resolve")
        future = pool.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        pool.shutdown(wait=False)
        try:
            future.result(timeout=self._resolve_timeout)
        except concurrent.futures.TimeoutError:
            self._went_offline()
            raise Offline(f"{host}: no answer from the name resolver within "
                          f"{self._resolve_timeout:.0f} s (offline?)") from None
        except OSError as e:
            self._went_offline()
            raise Offline(f"{host}: cannot resolve the name ({e.strerror or e}); offline?") \
                from None

    def _went_offline(self) -> None:
        with self._lock:
            self._offline_until = time.monotonic() + self.settings.offline_ttl_s

    def _post(self, upload: Upload, *, language: str | None, prompt: str | None,
              task: str) -> dict:
        import httpx

        endpoint = "audio/translations" if task == "translate" else "audio/transcriptions"
        data = {"model": self.settings.model, "response_format": "verbose_json"}
        if language and task != "translate":
            data["language"] = language
        if prompt:
            data["prompt"] = prompt
        attempt = 0
        while True:
            attempt += 1
            try:
                response, body = self._send(endpoint, data, upload)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                if attempt >= self.settings.max_attempts:
                    self._went_offline()
                    raise Offline(f"cannot connect to {self.host} "
                                  f"({self._redact(_reason(e))}); offline?") from None
                self._sleep(_backoff(attempt))
                continue
            except httpx.TimeoutException:
                raise CloudError(f"{self.host} did not answer within "
                                 f"{self.settings.read_timeout:.0f} s") from None
            except httpx.HTTPError as e:
                raise CloudError(f"{self.host}: {self._redact(_reason(e))}") from None
            if response.status_code == 200:
                return _json_body(body, self.host, self._key)
            message = error_message(body, response.reason_phrase, key=self._key)
            if response.status_code in (401, 403):
                raise CloudAuthError(f"{self.host} refused the API key "
                                     f"(HTTP {response.status_code}: {message})")
            if response.status_code == 413:
                raise CloudError(f"{self.host}: the upload is too large for the provider "
                                 f"(HTTP 413: {message}); lower [cloud] max_upload_bytes")
            retryable = (response.status_code in RETRY_STATUSES
                         and not _is_quota(response.status_code, body, message))
            if not retryable or attempt >= self.settings.max_attempts:
                raise CloudError(f"{self.host}: HTTP {response.status_code}: {message}")
            delay = _retry_after(response) or _backoff(attempt)
            log.info("%s: HTTP %d, retrying in %.1f s", self.host, response.status_code, delay)
            self._sleep(delay)

    def _send(self, endpoint: str, data: dict, upload: Upload):
        """One request under a total deadline; its answer read only up to a cap.

        Returns the response (its body already closed) and the bytes read.
        """
        import httpx

        seconds = self.settings.total_timeout or total_timeout_for(len(upload.data))
        headers = {"Authorization": f"Bearer {self._key}", "Accept-Encoding": "identity"}
        with _Deadline(seconds) as deadline:
            try:
                with self._http.stream("POST", endpoint, data=data, headers=headers,
                                       files={"file": (upload.filename, upload.data)},
                                       extensions={"trace": deadline.trace}) as response:
                    cap = MAX_ANSWER_BYTES if response.status_code == 200 else MAX_ERROR_BYTES
                    body, complete = _read_capped(response, cap)
            except httpx.HTTPError:
                if not deadline.expired:
                    raise
        if deadline.expired:
            raise CloudError(f"{self.host} did not finish within {seconds:.0f} s "
                             "([cloud] total_timeout)")
        if response.status_code == 200 and not complete:
            raise CloudError(f"{self.host}: the answer is over {MAX_ANSWER_BYTES // 2**20} MB, "
                             "which no transcription is; stopped reading it")
        return response, body

    def _redact(self, text: str) -> str:
        return redact(text, self._key)

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _log(self, path: Path, sha: str, upload: Upload, outcome: str, reason: str) -> None:
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "file": str(Path(path).resolve()),
            "sha256": sha,
            "host": self.host,
            "bytes": len(upload.data),
            "uploaded_as": upload.filename,
            "reason": reason,
            "outcome": self._redact(outcome),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def prepare_uploads(path: Path, audio: Audio | AudioStream | None,
                    limit: int) -> Iterator[Upload]:
    """The original file when the provider takes it as it is; else Opus, split if needed.

    Made as they are uploaded, one at a time: the note is read chunk by chunk and
    only one part's bytes (and `LOOK_BACK_S` of audio, to cut at a pause) are held.
    """
    path = Path(path)
    size = path.stat().st_size
    suffix = path.suffix.lower()
    if size <= limit and suffix in UPLOAD_SUFFIXES | {".opus"}:
        name = path.stem + (".ogg" if suffix == ".opus" else suffix)
        yield Upload(name, path.read_bytes())
        return
    if audio is None:
        raise CloudError(f"{path}: too large to upload and cannot be decoded to re-encode it")
    whole, rate = _encoded_whole(audio, limit)
    if whole is not None:
        log.info("%s: re-encoded %d -> %d bytes for upload", path, size, len(whole))
        yield Upload(path.stem + ".ogg", whole)
        return
    # Parts as long as 90 % of the limit lasts at the rate the note was encoding at
    # (when it was over at its end, the whole note's rate, as before this streamed),
    # each cut at a pause and halved if it still does not fit.
    step = int(max(1.0, limit * 0.9 / rate) * SAMPLE_RATE)
    look = min(step // 2, int(LOOK_BACK_S * SAMPLE_RATE))
    count = 0
    for part in _parts(audio, audio.chunks(), 0, step, look, limit, path):
        count += 1
        yield Upload(f"{path.stem}.part{count}.ogg", part.data, part.offset, part.seconds)
        del part
    log.info("%s: split into %d uploads of at most %d bytes", path, count, limit)


class _OpusFile:
    """An Ogg/Opus file in memory, written a stretch at a time: the same packets as
    the stretches joined and encoded at once (checked on the sample WhatsApp note)."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._encoder = OpusEncoder(self._buffer, SAMPLE_RATE)

    def write(self, samples: np.ndarray) -> None:
        self._encoder.write((np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16))

    @property
    def size(self) -> int:
        return self._buffer.tell()

    @property
    def seconds(self) -> float:
        return self._encoder.samples_in / SAMPLE_RATE

    def close(self) -> bytes:
        self._encoder.close()
        data, self._buffer = self._buffer.getvalue(), None
        return data


def _encoded_whole(audio: Audio | AudioStream, limit: int) -> tuple[bytes | None, float]:
    """The note as one Opus file when that fits in `limit`; else None and the bytes
    per second it came to, found as soon as it is over (not after the whole note)."""
    encoder = _OpusFile()
    chunks = audio.chunks()
    try:
        for chunk in chunks:
            encoder.write(chunk)
            if encoder.size > limit:
                break
    finally:
        chunks.close()
    data = encoder.close()
    if len(data) <= limit:
        return data, 0.0
    return None, len(data) / encoder.seconds


def _parts(audio: Audio | AudioStream, chunks: Iterable[np.ndarray], start: int, step: int,
           look: int, limit: int, path: Path) -> Iterator[Upload]:
    """The audio in `chunks` (which begins at sample `start` of the note) as Opus
    parts of at most `step` samples, each cut at the quietest pause in the `look`
    samples before that, and each within `limit` bytes (a part that is not is
    re-read and halved).

    Only the audio a cut may still fall in is held; the rest is encoded as it comes.
    A part that is over makes the later ones shorter, to 75 % of the limit at its
    rate (not 90 %: the clips' rates differ by more, and at 90 % a third of the
    parts were still over): after 2 minutes of silence, 10 minutes of speech (the
    test clips) at a 60 kB limit were 43 parts, 34 of them read again from the
    file's start to be halved (36 readings, 40 s on a loaded 2-core EPYC); now 39
    parts and 6 readings (8-13 s). They do not grow back: a note that gets quiet
    again is sent in more parts than it needs, rather than in parts read twice.
    """
    encoder = _OpusFile()
    part = start  # where the part being encoded starts
    held: list[np.ndarray] = []  # the audio from `held_from`, not encoded yet
    held_from = end = start
    for chunk in _regrouped(chunks, SAMPLE_RATE):
        held.append(chunk)
        end += len(chunk)
        while end > part + step:  # over long: cut at a pause
            window = np.concatenate(held)
            cut = held_from + _quiet_cut(window, part + step - look - held_from,
                                         part + step - held_from)
            encoder.write(window[:cut - held_from])
            data = encoder.close()
            if len(data) > limit:  # denser than the parts were sized for: size them again
                step = max(SAMPLE_RATE, min(step, int((cut - part) * limit * 0.75 / len(data))))
                look = min(look, step // 2)
            yield from _within(audio, data, part, cut, limit, path)
            del data
            encoder, part = _OpusFile(), cut
            held, held_from = [window[cut - held_from:]], cut
            del window
        while held and held_from + len(held[0]) <= part + step - look:  # no cut falls here
            encoder.write(held[0])
            held_from += len(held.pop(0))
    for chunk in held:
        encoder.write(chunk)
    data = encoder.close()
    if end > part:
        yield from _within(audio, data, part, end, limit, path)


def _within(audio: Audio | AudioStream, data: bytes, start: int, end: int, limit: int,
            path: Path) -> Iterator[Upload]:
    """One part as it was encoded when it fits; else its stretch re-read from the
    note and halved at a pause, until each half fits (container overhead varies)."""
    if len(data) <= limit:
        yield Upload("", data, start / SAMPLE_RATE, (end - start) / SAMPLE_RATE)
        return
    del data
    length = end - start
    if length < SAMPLE_RATE:
        raise CloudError(f"{path}: cannot fit into uploads of {limit} bytes; raise [cloud] "
                         "max_upload_bytes")
    look = min(length // 2, int(LOOK_BACK_S * SAMPLE_RATE))
    stretch = _stretch(audio.chunks(), start, end)
    try:
        yield from _parts(audio, stretch, start, length // 2 + look // 2, look, limit, path)
    finally:
        stretch.close()


def _stretch(chunks: Iterator[np.ndarray], start: int, end: int) -> Iterator[np.ndarray]:
    """The samples `start` to `end` of the note whose chunks these are."""
    at = 0
    try:
        for chunk in chunks:
            if at >= end:
                return
            if at + len(chunk) > start:
                yield chunk[max(0, start - at):end - at]
            at += len(chunk)
    finally:
        chunks.close()


def _regrouped(chunks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The same samples in arrays of `size` (the last may be shorter): a stream's
    chunks are a few ms each, too small to keep a list of."""
    group: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        group.append(chunk)
        held += len(chunk)
        if held >= size:
            joined = np.concatenate(group)
            for at in range(0, len(joined) - size + 1, size):
                yield joined[at:at + size]
            rest = joined[len(joined) - len(joined) % size:]
            group, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield np.concatenate(group)


def _quiet_cut(samples: np.ndarray, low: int, high: int) -> int:
    """Where between `low` and `high` to cut: the middle of the quietest PAUSE_S.

    Energy is averaged over PAUSE_S, not per frame: a plosive's closure is silent
    for a few tens of ms inside a word, a pause between words lasts longer. Of equal
    minima (digital silence) the first: parts in silence are `look` shorter than
    they could be (10 minutes at a 15 kB limit: 20 parts of 30 s where 11 would
    do; an hour is 817 kB, one upload at the default limit). Taking the last moved
    the cuts in test_cloud_stream's long note, and tiny.en then put the marker's
    words 12 s early (a part began 42 s before it, not 36): left as it was."""
    frames = (high - low) // CUT_FRAME
    span = int(PAUSE_S * SAMPLE_RATE) // CUT_FRAME
    if frames <= span:
        return (low + high) // 2
    window = samples[low:low + frames * CUT_FRAME].reshape(frames, CUT_FRAME)
    energy = np.square(window, dtype=np.float64).mean(axis=1)
    smooth = np.convolve(energy, np.ones(span) / span, mode="valid")
    quietest = int(np.argmin(smooth))
    return low + (quietest * CUT_FRAME) + span * CUT_FRAME // 2


def redact(text: str, key: str | None) -> str:
    """`text` without the API key or anything shaped like one.

    Every message that comes from a provider goes through here before it is
    raised, printed, logged or stored: some echo the key they were sent, and
    not always as it was sent (in another case, base64-encoded, JSON-escaped).
    """
    if key:
        text = _key_echoes(key).sub(REDACTED, text)
    return KEY_SHAPED.sub(REDACTED, text)


@functools.lru_cache(maxsize=8)
def _key_echoes(key: str) -> re.Pattern:
    r"""The ways a key comes back: as it is in any case, JSON-escaped (`\/`, `\u0041`),
    base64-encoded alone or as `Bearer <key>` / `:<key>` (Basic). A key shorter
    than SHORT_KEY is matched only where it stands alone, not inside words."""
    forms = {key, json.dumps(key)[1:-1], "".join(f"\\u{ord(c):04x}" for c in key),
             json.dumps(key, ensure_ascii=False)[1:-1].replace("/", "\\/")}
    for raw in (key, f"Bearer {key}", f":{key}"):
        encoded = base64.b64encode(raw.encode("utf-8", "surrogateescape")).decode()
        forms |= {encoded, encoded.rstrip("="), encoded.replace("+", "-").replace("/", "_")}
    pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    if len(key) < SHORT_KEY:
        pattern = f"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])"
    return re.compile(pattern, re.IGNORECASE)


def error_message(body: bytes, reason: str = "", key: str | None = None) -> str:
    """The provider's message in one line, without the key: OpenAI's `{"error":
    {"message"}}` and FastAPI's `{"detail": ...}` alike, else the first line of text."""
    text = redact(body.decode("utf-8", "replace"), key)  # before cutting, not a key's half
    return redact(_message(text), key) or reason


def _message(text: str) -> str:
    parsed = _parsed(text)
    if parsed is None:
        return one_line(text)
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and error.get("message"):
            return one_line(str(error["message"]))
        if isinstance(error, str):
            return one_line(error)
        detail = parsed.get("detail")
        if isinstance(detail, str):
            return one_line(detail)
        if isinstance(detail, dict) and detail.get("message"):
            return one_line(str(detail["message"]))
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            where = ".".join(str(p) for p in first.get("loc", []))
            msg = str(first.get("msg", "invalid request"))
            return one_line(f"{msg} ({where})" if where else msg)
    return one_line(str(parsed))


def _parsed(body: bytes | str):
    """The body as JSON, or None when it is not JSON (or was cut off at the cap, or
    nests deeper than Python's parser goes)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _read_capped(response, cap: int) -> tuple[bytes, bool]:
    """At most `cap` bytes of the body, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], False
    return b"".join(chunks), True


def total_timeout_for(upload_bytes: int) -> float:
    """The whole request's deadline when `[cloud] total_timeout` is 0 (the default)."""
    return TOTAL_TIMEOUT_BASE_S + TOTAL_TIMEOUT_PER_MB_S * upload_bytes / 2**20


class _Deadline:
    """Ends one request at a fixed time, however slowly the peer sends.

    httpx's timeouts are per socket operation, so a server sending one byte every
    5 s never trips a 300 s read timeout. At the deadline a timer shuts the
    connection's socket down, which wakes the blocked read or write. The socket
    comes from httpcore's `trace` extension; connections are not kept alive, so
    every request opens (and traces) its own.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def trace(self, event: str, info: dict) -> None:
        if event != "connection.connect_tcp.complete":
            return
        raw = info["return_value"].get_extra_info("socket")
        # A duplicate of the descriptor: TLS later takes the original over, and a
        # shutdown through either ends the one connection.
        with self._lock:
            if self._sock is not None:
                self._sock.close()
            self._sock = socket.socket(fileno=os.dup(raw.fileno()))
            if self.expired:
                self._shut()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _is_quota(status: int, body: bytes, message: str) -> bool:
    """A 429 for an exhausted quota or billing limit will not pass by waiting."""
    if status != 429:
        return False
    parsed = _parsed(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code == "insufficient_quota" or "quota" in message.lower()


def _retry_after(response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, BACKOFF_BASE_S * 2 ** (attempt - 1))


def _json_body(body: bytes, host: str, key: str | None = None) -> dict:
    """A 200's answer: JSON with its text, or plain text (`response_format=text`).
    The key is taken out of every text in it: a provider that echoes it in a 200
    would put it into the transcript, its files and the store."""
    text = redact(body.decode("utf-8", "replace"), key).strip()
    parsed = _parsed(text)
    if parsed is None:
        if text[:1] in ("{", "["):  # JSON no parser here can read (nested 100,000 deep)
            raise CloudError(f"{host}: the answer is not a transcription (JSON that "
                             "cannot be read)")
        return {"text": text}
    if not isinstance(parsed, dict) or not isinstance(parsed.get("text"), str):
        raise CloudError(f"{host}: the answer is not a transcription")
    parsed["text"] = redact(parsed["text"], key)
    for segment in parsed.get("segments") or []:
        if isinstance(segment, dict) and isinstance(segment.get("text"), str):
            segment["text"] = redact(segment["text"], key)
    return parsed


def _segments(body: dict, upload: Upload, host: str) -> list[Segment]:
    """The answer's segments, placed in the note: a provider's times are kept inside
    the part they came from (a lying one put a segment of an 8 s note at 500-900 s,
    or before 0), in time order; times that are not numbers are not an answer."""
    raw = body.get("segments") or []
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise CloudError(f"{host}: the answer is not a transcription (its segments are "
                         "not a list of segments)")
    if not raw:
        text = body["text"].strip()
        if not text:
            return []
        seconds = upload.seconds
        if seconds is None:
            seconds = max(0.0, _number(body.get("duration")))
        return [Segment(upload.offset, upload.offset + seconds, text)]
    placed = []
    for s in raw:
        text = s.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        start = _part_time(s.get("start", 0.0), upload, host)
        end = max(start, _part_time(s.get("end", start - upload.offset), upload, host))
        placed.append(Segment(start, end, text.strip(), _number(s.get("avg_logprob")),
                              _number(s.get("no_speech_prob"))))
    return sorted(placed, key=lambda segment: segment.start)


def _part_time(value, upload: Upload, host: str) -> float:
    """A time in a part's answer as a time in the note, within the part when its
    length is known (else the caller clamps to the note's length)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise CloudError(f"{host}: the answer is not a transcription (a segment's time is "
                         f"{one_line(json.dumps(value), 40)})")
    longest = upload.seconds if upload.seconds is not None else math.inf
    return upload.offset + min(max(float(value), 0.0), longest)


def _number(value) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else 0.0


def _within_note(segments: list[Segment], duration: float) -> list[Segment]:
    """No segment ends after the note: an upload sent as it is has no length of its
    own until the note has been read."""
    return [s if s.end <= duration else
            Segment(min(s.start, duration), duration, s.text, s.avg_logprob, s.no_speech_prob)
            for s in segments]


def _most_heard(languages: list[tuple[str, int]]) -> str | None:
    """The language most of a note's text came back in: a part of silence may come
    back as 'english' with no words before parts of German (the first heard, when
    no part had words)."""
    totals: dict[str, int] = {}
    for language, chars in languages:
        totals[language] = totals.get(language, 0) + chars
    return max(totals, key=totals.__getitem__) if totals else None


def _language_code(language) -> str | None:
    if not isinstance(language, str) or not language.strip():
        return None
    return LANGUAGE_NAMES.get(language.lower(), language.lower())


def _reason(e: Exception) -> str:
    return str(e) or type(e).__name__
