"""Providers that answer 200 with what no transcription is: the key they were sent (as it
is, in another case, base64-encoded, JSON-escaped), or JSON nested too deep to read.
Real servers on loopback, the real command."""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest
from conftest import SAMPLES, json_lines, run_cli
from servers import RawServer, http_response

NOTE = "PTT-20240312-WA0007.opus"


def cloud_env(home, url: str, key: str, **extra: str) -> dict:
    return {"TRANSCRIBE_HOME": str(home), "TRANSCRIBE_CLOUD_ALLOW": "1",
            "TRANSCRIBE_CLOUD_BASE_URL": url, "TRANSCRIBE_CLOUD_API_KEY": key, **extra}


def answering(body_of) -> RawServer:
    """A provider that answers 200 with `body_of(key it was sent)`, and the key in a
    response header too."""
    def reply(server, peer, headers) -> None:
        key = headers.get("authorization", "").removeprefix("Bearer ")
        body = body_of(key)
        peer.send(http_response("200 OK", body).replace(
            b"\r\n\r\n", f"\r\nX-Echo: {key}\r\n\r\n".encode(), 1))
    return RawServer(reply)


def echoes(key: str) -> bytes:
    """The key as it is, upper-cased, base64-encoded and JSON-escaped (each letter a
    \\u escape, which a JSON parser turns back into the key)."""
    escaped = "".join("\\u%04x" % ord(c) for c in key)
    said = (f"heard {json.dumps(key)[1:-1]} and {key.upper()} and "
            f"{base64.b64encode(key.encode()).decode()} and {escaped}")
    return ('{"text": "%s", "segments": [{"start": 0, "end": 2, "text": "%s"}]}'
            % (said, said)).encode()


@pytest.mark.parametrize("key", ["Zq7-longer-key/with+slash", "k3y9"])
def test_a_key_a_provider_echoes_in_its_transcript_is_never_kept(tmp_path, key):
    with answering(echoes) as server:
        result = run_cli("-vv", "--json", "--engine", "cloud", str(SAMPLES / NOTE),
                         env=cloud_env(tmp_path, server.url, key), timeout=120)
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert t["text"].startswith("heard [redacted] and [redacted] and [redacted] and "
                                "[redacted]"), t["text"]
    with sqlite3.connect(tmp_path / "data" / "transcribe.db") as con:
        stored = "".join(str(v) for row in con.execute("SELECT * FROM transcripts")
                         for v in row)
    assert "heard [redacted]" in stored
    forms = (key, key.upper(), base64.b64encode(key.encode()).decode(),
             "".join("\\u%04x" % ord(c) for c in key))
    for text in (result.stdout, result.stderr, stored):
        for form in forms:
            assert form not in text, (form, text)


def test_json_nested_too_deep_keeps_the_local_transcript(tmp_path):
    """The local model's transcript is low-confidence by the settings, so the cloud is
    asked; its answer cannot be read, and the local one stands: one line, exit 0."""
    deep = b"[" * 100_000 + b"]" * 100_000
    with answering(lambda key: deep) as server:
        result = run_cli("--json", str(SAMPLES / NOTE), timeout=300,
                         env=cloud_env(tmp_path, server.url, "a-key-123456",
                                       TRANSCRIBE_CLOUD_LOW_CONFIDENCE_LOGPROB="0"))
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert t["engine"] == "local" and "Sam" in t["text"]
    assert "the answer is not a transcription" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
