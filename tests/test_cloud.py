"""Cloud fallback: a real OpenAI-compatible server on loopback, consent, and proof of silence."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import REFERENCES, ROOT, SAMPLES, json_lines, run_cli
from servers import API_KEY, asr_server, free_port, silent_server
from wer import normalise, wer

from transcribe.audio import decode, file_sha256
from transcribe.cloud import CloudClient, Offline, error_message, prepare_uploads
from transcribe.errors import CloudError
from transcribe.models import resolve
from transcribe.settings import CloudSettings, Secret
from transcribe.speech import detect_speech

NOTE = "PTT-20240312-WA0007.opus"
M4A = "New Recording 12.m4a"


@pytest.fixture(scope="module")
def server_model(home) -> str:
    """The server runs tiny.en from its package: a different model from ours (base)."""
    return "faster-whisper:" + resolve("tiny.en", home / "cache" / "models").location


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_model):
    with asr_server(tmp_path_factory.mktemp("asr")) as url:
        yield url


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory, server_model):
    with asr_server(tmp_path_factory.mktemp("asr-strict"), "strict",
                    max_upload_bytes="20000") as url:
        yield url


def cloud_env(home_dir: Path, url: str, model: str, allow: str = "1", key: str = API_KEY,
              **extra: str) -> dict:
    return {"TRANSCRIBE_HOME": str(home_dir), "TRANSCRIBE_CLOUD_ALLOW": allow,
            "TRANSCRIBE_CLOUD_BASE_URL": url, "TRANSCRIBE_CLOUD_MODEL": model,
            "TRANSCRIBE_CLOUD_API_KEY": key, **extra}


def upload_log(home_dir: Path) -> list[dict]:
    path = home_dir / "data" / "cloud-uploads.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_unusable_local_model_falls_back_to_the_cloud(tmp_path, server, server_model):
    env = cloud_env(tmp_path, server, server_model)
    result = run_cli("--json", "--model", str(tmp_path / "gone"), str(SAMPLES / NOTE), env=env)
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert t["engine"] == "cloud" and t["provider"] == "127.0.0.1"
    assert t["model"] == server_model
    assert "local model unavailable" in t["cloud_reason"]
    assert wer(REFERENCES[NOTE]["text"], t["text"]) <= 0.2, t["text"]
    [entry] = upload_log(tmp_path)
    assert entry["sha256"] == file_sha256(SAMPLES / NOTE)
    assert entry["bytes"] == (SAMPLES / NOTE).stat().st_size
    assert entry["uploaded_as"].endswith(".ogg"), "Opus goes up named .ogg"
    assert entry["host"] == "127.0.0.1" and entry["outcome"] == "ok"
    shown = run_cli("cloud", "log", env=env)
    assert entry["sha256"][:12] in shown.stdout and "127.0.0.1" in shown.stdout
    for text in (result.stdout, result.stderr, shown.stdout,
                 (tmp_path / "data" / "cloud-uploads.jsonl").read_text()):
        assert API_KEY not in text


def test_the_user_can_ask_for_the_cloud_for_a_file(tmp_path, server, server_model):
    result = run_cli("--json", "--engine", "cloud", str(SAMPLES / M4A),
                     env=cloud_env(tmp_path, server, server_model))
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert t["engine"] == "cloud" and t["cloud_reason"] == "requested by the user"
    assert wer(REFERENCES[M4A]["text"], t["text"]) <= 0.2


def test_a_wrong_key_is_one_clear_line_and_stops_the_batch(tmp_path, server, server_model):
    wrong = "sk-wrong-5d2e"
    result = run_cli("--engine", "cloud", str(SAMPLES / NOTE), str(SAMPLES / M4A),
                     env=cloud_env(tmp_path, server, server_model, key=wrong))
    assert result.returncode == 4
    assert result.stderr.strip() == "error: 127.0.0.1 refused the API key (HTTP 401: Unauthorized)"
    assert wrong not in result.stderr + result.stdout
    assert len(upload_log(tmp_path)) == 1


def test_an_oversize_note_is_reencoded_before_upload(tmp_path, strict_server, server_model):
    size = (SAMPLES / M4A).stat().st_size
    assert size > 20000
    env = cloud_env(tmp_path, strict_server, server_model,
                    TRANSCRIBE_CLOUD_MAX_UPLOAD_BYTES="20000")
    result = run_cli("--json", "--engine", "cloud", str(SAMPLES / M4A), env=env)
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert wer(REFERENCES[M4A]["text"], t["text"]) <= 0.2, t["text"]
    [entry] = upload_log(tmp_path)
    assert entry["uploaded_as"] == "New Recording 12.ogg" and entry["bytes"] < 20000


def test_a_note_too_long_for_one_upload_is_split(tmp_path, strict_server, server_model):
    """Every part is uploaded, every part with speech in it comes back at its offset, and
    the cuts fall between words (the text reads as well as the whole note's would).

    Not exact words: the server's tiny.en hears a note cut into 2-4 s parts differently
    on AVX2 and AVX-512 CPUs, and the old check (words split at commas only) missed
    "sam" on an AVX2 machine. Key words are matched normalised, two of four from the
    first part and from the last, and the WER bound has a margin: cut at pauses the
    parts gave 0.0 here, cut at fixed points (through "ten minutes") 0.53."""
    env = cloud_env(tmp_path, strict_server, server_model,
                    TRANSCRIBE_CLOUD_MAX_UPLOAD_BYTES="9000")
    result = run_cli("--json", "--engine", "cloud", str(SAMPLES / NOTE), env=env)
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    audio = decode(SAMPLES / NOTE)
    parts = list(prepare_uploads(SAMPLES / NOTE, audio, 9000))  # what the command split it into
    assert len(parts) >= 2 and all(len(p.data) <= 9000 for p in parts)
    assert [(e["uploaded_as"], e["bytes"], e["outcome"]) for e in upload_log(tmp_path)] == \
        [(p.filename, len(p.data), "ok") for p in parts]
    starts = [s["start"] for s in t["segments"]]
    assert starts == sorted(starts), "later parts keep their offsets"
    ends = [p.offset for p in parts[1:]] + [audio.duration]
    speech = detect_speech(audio.samples).spans
    for part, end in zip(parts, ends):
        heard = sum(max(0.0, min(end, b) - max(part.offset, a)) for a, b in speech)
        if heard >= 0.5:
            assert any(part.offset <= start < end for start in starts), \
                f"nothing came back for {part.filename} ({part.offset:.1f}-{end:.1f} s)"
    words = set(normalise(t["text"]))
    assert len(words & {"hi", "sam", "its", "me"}) >= 2, t["text"]            # the first part
    assert len(words & {"please", "start", "meeting", "without"}) >= 2, t["text"]  # the last
    assert wer(REFERENCES[NOTE]["text"], t["text"]) <= 0.35, t["text"]


def test_what_the_provider_refuses_as_too_large_is_a_clear_error(tmp_path, strict_server,
                                                                 server_model):
    result = run_cli("--engine", "cloud", str(SAMPLES / M4A),
                     env=cloud_env(tmp_path, strict_server, server_model))
    assert result.returncode == 4
    assert "too large for the provider (HTTP 413: File too large)" in result.stderr


def test_the_upload_log_as_json_is_one_array_even_when_empty(tmp_path):
    env = {"TRANSCRIBE_HOME": str(tmp_path)}
    result = run_cli("cloud", "log", "--json", env=env)
    assert result.returncode == 0 and json.loads(result.stdout) == []
    prose = run_cli("cloud", "log", env=env)
    assert prose.stdout == "" and "no uploads" in prose.stderr
    # A crash mid-write leaves a line cut short: the rest is still shown.
    entry = {"time": "2024-03-12T18:45:02+00:00", "file": "/n.ogg", "sha256": "ab" * 32,
             "host": "api.openai.com", "bytes": 1, "uploaded_as": "n.ogg", "reason": "r",
             "outcome": "ok"}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cloud-uploads.jsonl").write_text(json.dumps(entry) + '\n{"time": "20')
    result = run_cli("cloud", "log", "--json", env=env)
    assert result.returncode == 0 and json.loads(result.stdout) == [entry]
    assert "skipped 1 damaged line(s)" in result.stderr


def test_engine_cloud_without_consent_is_refused(tmp_path, server, server_model):
    result = run_cli("--engine", "cloud", str(SAMPLES / NOTE),
                     env=cloud_env(tmp_path, server, server_model, allow="0"))
    assert result.returncode == 4
    assert result.stderr.startswith("error: cloud use is off: allow it with --cloud")
    assert upload_log(tmp_path) == []


# --- proof of silence: an audit hook records every network attempt ---------------------

def run_guarded(tmp_path: Path, env: dict, *args: str) -> tuple[subprocess.CompletedProcess,
                                                                  list[str]]:
    report = tmp_path / "network.txt"
    report.write_text("")
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "no_network.py"),
                             str(report), *args], capture_output=True, text=True,
                            env=dict(os.environ, **env), cwd=ROOT, timeout=300)
    return result, report.read_text().splitlines()


@pytest.mark.parametrize("case", ["plain", "low-confidence", "model-missing", "library"])
def test_without_consent_nothing_touches_the_network(tmp_path, server, server_model, case):
    # Everything is configured for the cloud and a server is listening; only consent is off.
    # A threshold of 0 makes every local result "low-confidence", so the policy would upload.
    env = cloud_env(tmp_path, server, server_model, allow="0",
                    TRANSCRIBE_CLOUD_LOW_CONFIDENCE_LOGPROB="0")
    note = str(SAMPLES / NOTE)
    if case == "library":
        result, attempts = run_guarded(tmp_path, env, "library", note)
    elif case == "model-missing":
        result, attempts = run_guarded(tmp_path, env, "cli", "-m", str(tmp_path / "gone"), note)
    else:
        result, attempts = run_guarded(tmp_path, env, "cli", note)
    assert attempts == []
    assert upload_log(tmp_path) == []
    if case == "model-missing":
        assert result.returncode == 3
        assert "not found" in result.stderr and "gone" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert "meeting" in result.stdout


def test_the_guard_sees_an_upload_when_consent_is_given(tmp_path, server, server_model):
    """The control for the test above: the same run with --cloud is caught reaching out."""
    env = cloud_env(tmp_path, server, server_model, allow="0",
                    TRANSCRIBE_CLOUD_LOW_CONFIDENCE_LOGPROB="0")
    result, attempts = run_guarded(tmp_path, env, "cli", "--cloud", str(SAMPLES / NOTE))
    assert attempts and attempts[0].startswith("socket.getaddrinfo")
    assert "kept the local result" in result.stderr


# --- consent on, but offline -------------------------------------------------------------

def test_offline_with_consent_keeps_the_local_result(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    env = cloud_env(tmp_path, closed, "whisper-1", TRANSCRIBE_CLOUD_LOW_CONFIDENCE_LOGPROB="0")
    result = run_cli("--json", str(SAMPLES / NOTE), str(SAMPLES / M4A), env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    first, second = json_lines(result.stdout)
    for t in (first, second):
        assert t["engine"] == "local" and t["cloud_pending"] is True and t["text"]
    assert "waiting for the cloud" in result.stderr
    assert "unreachable moments ago" in result.stderr, "the second file does not wait again"


def test_offline_and_no_local_model_is_a_clear_error(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    result = run_cli("-m", str(tmp_path / "gone"), str(SAMPLES / NOTE),
                     env=cloud_env(tmp_path, closed, "whisper-1"), timeout=120)
    assert result.returncode == 4
    [line, _] = result.stderr.strip().splitlines()
    assert "not found" in line and "cloud fallback failed too" in line and "offline?" in line


def test_a_resolver_that_never_answers_means_offline(tmp_path, monkeypatch):
    """A fault no real server here can produce: DNS that hangs. The lookup is stubbed."""
    def hang(*args, **kwargs):
        time.sleep(30)

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    client = CloudClient(CloudSettings(allow=True, base_url="https://api.example.invalid/v1",
                                       api_key=Secret("k")), tmp_path / "log.jsonl",
                         resolve_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(Offline, match="no answer from the name resolver"):
        client.transcribe(SAMPLES / NOTE, None, language=None, prompt=None, reason="test")
    with pytest.raises(Offline, match="unreachable moments ago"):
        client.transcribe(SAMPLES / NOTE, None, language=None, prompt=None, reason="test")
    assert time.monotonic() - started < 25, "the lookup deadline did not hold"
    assert not (tmp_path / "log.jsonl").exists()


def test_a_provider_that_never_answers_times_out(tmp_path):
    with silent_server() as url:
        client = CloudClient(CloudSettings(allow=True, base_url=url, api_key=Secret("k"),
                                           read_timeout=1.0), tmp_path / "log.jsonl")
        with pytest.raises(CloudError, match="did not answer within 1 s"):
            client.transcribe(SAMPLES / NOTE, None, language=None, prompt=None, reason="test")
    [entry] = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert entry["outcome"].startswith("failed")


# --- faults the real server cannot produce: httpx.MockTransport ---------------------------

class Scripted:
    """A transport that answers from a script and records what it was sent."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)


def scripted_client(tmp_path, script: Scripted, **settings) -> tuple[CloudClient, list]:
    client = CloudClient(CloudSettings(allow=True, base_url="http://127.0.0.1:9/v1",
                                       api_key=Secret("k"), **settings),
                         tmp_path / "log.jsonl", transport=httpx.MockTransport(script))
    slept: list[float] = []
    client._sleep = slept.append
    return client, slept


OK = httpx.Response(200, json={"text": "hello there", "language": "english", "segments": [
    {"start": 0.0, "end": 1.5, "text": " hello there"}]})


def test_429_with_retry_after_is_honoured_and_capped(tmp_path):
    script = Scripted(httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {
        "message": "Rate limit reached", "code": "rate_limit_exceeded"}}),
        httpx.Response(429, headers={"Retry-After": "3600"}), OK)
    client, slept = scripted_client(tmp_path, script)
    t = client.transcribe(SAMPLES / NOTE, None, language=None, prompt=None, reason="test")
    assert t.text == "hello there" and t.language == "en" and t.engine == "cloud"
    assert slept == [2.0, 30.0]
    assert len(script.requests) == 3
    assert script.requests[0].headers["authorization"] == "Bearer k"


def test_503_then_success_backs_off(tmp_path):
    script = Scripted(httpx.Response(503, text="upstream busy"),
                      httpx.Response(502, text="bad gateway"), OK)
    client, slept = scripted_client(tmp_path, script)
    assert client.transcribe(SAMPLES / NOTE, None, language=None, prompt=None,
                             reason="test").text == "hello there"
    assert len(slept) == 2 and 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0


@pytest.mark.parametrize("response,expected", [
    (httpx.Response(429, json={"error": {"message": "You exceeded your current quota",
                                         "code": "insufficient_quota"}}),
     "HTTP 429: You exceeded your current quota"),
    (httpx.Response(400, json={"error": {"message": "Invalid file format.",
                                         "type": "invalid_request_error"}}),
     "HTTP 400: Invalid file format."),
    (httpx.Response(400, json={"detail": [{"loc": ["body", "model"],
                                           "msg": "field required"}]}),
     "HTTP 400: field required (body.model)"),
])
def test_errors_that_waiting_cannot_fix_are_not_retried(tmp_path, response, expected):
    script = Scripted(response)
    client, slept = scripted_client(tmp_path, script)
    with pytest.raises(CloudError) as caught:
        client.transcribe(SAMPLES / NOTE, None, language=None, prompt=None, reason="test")
    assert expected in str(caught.value)
    assert slept == [] and len(script.requests) == 1


def test_retries_stop_after_max_attempts(tmp_path):
    script = Scripted(*[httpx.Response(500, json={"detail": "boom"})] * 3)
    client, slept = scripted_client(tmp_path, script, max_attempts=3)
    with pytest.raises(CloudError, match="HTTP 500: boom"):
        client.transcribe(SAMPLES / NOTE, None, language=None, prompt=None, reason="test")
    assert len(script.requests) == 3 and len(slept) == 2


def test_error_bodies_of_both_shapes_read_as_one_line():
    assert error_message(b'{"detail": "Unauthorized"}') == "Unauthorized"
    assert error_message(b'{"error": {"message": "Incorrect API key"}}') == "Incorrect API key"
    assert error_message(b"<html>\nBad Gateway</html>") == "<html>"
    assert error_message(b"", "Service Unavailable") == "Service Unavailable"


def test_a_key_in_a_shared_config_file_is_refused(tmp_path):
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text('[cloud]\nallow = true\napi_key = "sk-in-file"\n')
    config.chmod(0o644)
    result = run_cli("cloud", "status", env={"TRANSCRIBE_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "refusing the [cloud] api_key" in result.stderr and "chmod 600" in result.stderr
    assert "sk-in-file" not in result.stderr
    config.chmod(0o600)
    result = run_cli("cloud", "status", "--json", env={"TRANSCRIBE_HOME": str(tmp_path)})
    status = json.loads(result.stdout)
    assert status["allowed"] is True and status["api_key"] == "set"
    assert "sk-in-file" not in result.stdout


def test_consent_comes_from_file_then_env_then_flag(tmp_path):
    from transcribe.settings import Settings

    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text('[cloud]\nallow = false\nbase_url = "https://api.groq.com/openai/v1"\n'
                      'model = "whisper-large-v3"\n')
    environ = {"TRANSCRIBE_HOME": str(tmp_path)}
    from_file = Settings.load(environ).cloud
    assert not from_file.allow and from_file.host == "api.groq.com"
    environ["TRANSCRIBE_CLOUD_ALLOW"] = "1"
    assert Settings.load(environ).cloud.allow
    assert not Settings.load(environ).with_cloud(allow=False).cloud.allow
    environ["GROQ_API_KEY"] = "gsk-1"
    config.write_text('[cloud]\napi_key_env = "GROQ_API_KEY"\n')
    assert Settings.load(environ).cloud.key() == "gsk-1"
    assert "gsk-1" not in repr(Settings.load(environ))
