"""Hostile or broken cloud providers: real servers on loopback that trickle, never stop,
or echo the key. Each is run against the real command."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLES, run_cli, run_measured
from servers import RawServer, endless, http_response, trickle

NOTE = "PTT-20240312-WA0007.opus"
KEY = "sk-proj-Zt9QmX4vLr2Kp7WnB8cYd3Fh"
ANSWER = b'{"text": "hello there", "language": "english"}'
MB = 2**20


def cloud_env(home, url: str, **extra: str) -> dict:
    return {"TRANSCRIBE_HOME": str(home), "TRANSCRIBE_CLOUD_ALLOW": "1",
            "TRANSCRIBE_CLOUD_BASE_URL": url, "TRANSCRIBE_CLOUD_API_KEY": KEY, **extra}


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickling_provider_is_cut_off_at_the_total_deadline(tmp_path, where):
    # One byte every 0.1 s: each byte resets httpx's read timeout (300 s), so only a
    # deadline for the whole request ends it. The whole answer would take about 13 s.
    response = http_response("200 OK", ANSWER, close_delimited=True)
    start = 0 if where == "headers" else response.index(b"\r\n\r\n") + 4
    with RawServer(trickle(response, 0.1, from_byte=start)) as server:
        result = run_cli("--engine", "cloud", str(SAMPLES / NOTE), timeout=120,
                         env=cloud_env(tmp_path, server.url, TRANSCRIBE_CLOUD_TOTAL_TIMEOUT="2"))
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()[:1]
    assert "127.0.0.1 did not finish within 2 s ([cloud] total_timeout)" in line
    assert sum(server.sent) < len(response), "the client hung up before the answer ended"


@pytest.mark.parametrize("status", ["200 OK", "500 Internal Server Error"])
def test_an_endless_answer_is_read_only_up_to_a_cap(tmp_path, status):
    """A body that never ends (the server stops at 256 MB): the client stops after a few MB
    and stays small, for a 200 and for an error that is retried."""
    note = str(SAMPLES / NOTE)
    refused = http_response("401 Unauthorized", b'{"error": {"message": "no"}}')
    with RawServer(lambda server, peer, headers: peer.send(refused)) as control:
        baseline, _, _, code = run_measured(["--engine", "cloud", note],
                                            cloud_env(tmp_path, control.url), tmp_path,
                                            timeout=120)
    assert code == 4
    with RawServer(endless(status, limit=256 * MB)) as server:
        peak, _, stderr, code = run_measured(["--engine", "cloud", note],
                                             cloud_env(tmp_path, server.url), tmp_path,
                                             timeout=120)
    assert code == 4, stderr
    [line] = stderr.strip().splitlines()[:1]
    if status == "200 OK":
        assert line.endswith("127.0.0.1: the answer is over 4 MB, which no transcription is; "
                             "stopped reading it"), line
        assert len(server.sent) == 1
    else:
        assert "127.0.0.1: HTTP 500: {\"error\": {\"message\": \"xxx" in line
        assert len(line) < 400
        assert len(server.sent) == 4, "retried as a 500 is"
    # What a connection took includes the kernel's socket buffers (a few MB on loopback).
    assert max(server.sent) < 32 * MB, server.sent
    assert peak - baseline < 64, (peak, baseline)  # MB


def echo_the_key(status: str):
    """Answers as OpenAI's 401 does, quoting the key it was sent, and two more key-shaped
    tokens (another OpenAI key, a Groq key) in a second message."""
    def reply(server, peer, headers: dict) -> None:
        sent = headers["authorization"].removeprefix("Bearer ")
        body = json.dumps({"error": {
            "message": f"Incorrect API key provided: {sent}. Also tried "
                       f"sk-Other9f8e7d6c5b4a and gsk_Groq1a2b3c4d5e6f7g.",
            "type": "invalid_request_error", "code": "invalid_api_key"}})
        peer.send(http_response(status, body.encode()))
    return reply


@pytest.mark.parametrize("key,status", [
    (KEY, "401 Unauthorized"),                # OpenAI's key shape, refused: stops the batch
    ("plainKey-77c1a9e2", "400 Bad Request"),  # any other key, in an error for this file
])
def test_a_key_the_provider_echoes_is_never_shown_logged_or_stored(tmp_path, key, status):
    env = cloud_env(tmp_path, "", TRANSCRIBE_CLOUD_API_KEY=key)
    with RawServer(echo_the_key(status)) as server:
        env["TRANSCRIBE_CLOUD_BASE_URL"] = server.url
        result = run_cli("-vv", "--engine", "cloud", str(SAMPLES / NOTE), env=env, timeout=120)
    assert result.returncode == 4, result.stderr
    assert "Incorrect API key provided: [redacted]. Also tried [redacted] and [redacted]." \
        in result.stderr
    upload_log = (tmp_path / "data" / "cloud-uploads.jsonl").read_text()
    [entry] = [json.loads(line) for line in upload_log.splitlines()]
    assert "Incorrect API key provided: [redacted]" in entry["outcome"]
    shown = [run_cli("cloud", "log", *flags, env=env) for flags in ([], ["--json"])]
    assert all(s.returncode == 0 and str(SAMPLES / NOTE) in s.stdout for s in shown)
    assert json.loads(shown[1].stdout) == [entry]
    for text in (result.stdout, result.stderr, upload_log, *(s.stdout for s in shown)):
        for secret in (key, "sk-Other9f8e7d6c5b4a", "gsk_Groq1a2b3c4d5e6f7g", key[-12:]):
            assert secret not in text
