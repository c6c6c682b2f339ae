"""A damaged or truncated note is never sent to the cloud on its own account: not when
its local transcript is low-confidence, nor when the local engine fails on it (the
README's promise). A provider on loopback counts what reaches it."""

from __future__ import annotations

import pytest
from conftest import SAMPLES, json_lines, run_cli
from servers import RawServer, http_response

NOTE = "PTT-20240312-WA0007.opus"
OGG = "audio_2024-03-12_18-45-02.ogg"
ANSWER = b'{"text": "from the cloud", "language": "english"}'


def counting() -> RawServer:
    return RawServer(lambda server, peer, headers: peer.send(http_response("200 OK", ANSWER)))


@pytest.mark.parametrize("name", [NOTE, OGG])
def test_a_truncated_low_confidence_note_stays_local(tmp_path, name):
    data = (SAMPLES / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[:len(data) * 6 // 10])
    with counting() as server:
        result = run_cli("--json", str(cut), timeout=300, env={
            "TRANSCRIBE_HOME": str(tmp_path / "home"), "TRANSCRIBE_CLOUD_ALLOW": "1",
            "TRANSCRIBE_CLOUD_BASE_URL": server.url, "TRANSCRIBE_CLOUD_API_KEY": "k-123456",
            # every local transcript counts as low-confidence
            "TRANSCRIBE_CLOUD_LOW_CONFIDENCE_LOGPROB": "0"})
    [t] = json_lines(result.stdout)
    assert t["truncated"] or t["damaged"], t
    assert t["engine"] == "local" and t["text"], t
    assert server.sent == [], "a truncated note went to the cloud"
    assert not (tmp_path / "home" / "data" / "cloud-uploads.jsonl").exists()
    with counting() as server:  # the same note whole is sent: the settings do ask for it
        whole = run_cli("--json", str(SAMPLES / name), timeout=300, env={
            "TRANSCRIBE_HOME": str(tmp_path / "home"), "TRANSCRIBE_CLOUD_ALLOW": "1",
            "TRANSCRIBE_CLOUD_BASE_URL": server.url, "TRANSCRIBE_CLOUD_API_KEY": "k-123456",
            "TRANSCRIBE_CLOUD_LOW_CONFIDENCE_LOGPROB": "0"})
    assert json_lines(whole.stdout)[0]["engine"] == "cloud", whole.stderr
    assert len(server.sent) == 1
