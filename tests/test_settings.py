"""Wrong settings are refused before any work, whichever way they come: one line, exit 2."""

from __future__ import annotations

import shutil

import pytest
from conftest import SAMPLES, json_lines, private_home, run_cli
from test_watch import by_name, wait_for, watcher

NOTE = "PTT-20240312-WA0007.opus"

# (flag, environment variable, config.toml line) giving the same wrong value
WRONG = {
    "language": (["--language", "klingon"], {"TRANSCRIBE_LANGUAGE": "klingon"},
                 'language = "klingon"', "not one Whisper knows"),
    "compute_type": (["--compute-type", "int3"], {"TRANSCRIBE_COMPUTE_TYPE": "int3"},
                     'compute_type = "int3"', "compute_type 'int3' is not one of"),
    "device": (["--device", "gpu"], {"TRANSCRIBE_DEVICE": "gpu"}, 'device = "gpu"', "gpu"),
    "task": (["--task", "sing"], {"TRANSCRIBE_TASK": "sing"}, 'task = "sing"', "sing"),
    "beam_size": (["--beam-size", "0"], {"TRANSCRIBE_BEAM_SIZE": "0"}, "beam_size = 0",
                  "beam_size must be 1 or more"),
    "threads": (["--threads", "-1"], {"TRANSCRIBE_CPU_THREADS": "-1"}, "cpu_threads = -1",
                "cpu_threads must be 0 or more"),
}


@pytest.mark.parametrize("way", ["flag", "env", "config"])
@pytest.mark.parametrize("setting", sorted(WRONG))
def test_a_wrong_value_is_one_line_and_exit_2_before_any_work(tmp_path, setting, way):
    """A fresh home: had the command started work, it would have joined the model into
    the cache or opened the store."""
    flag, env, line, says = WRONG[setting]
    fresh = tmp_path / "home"
    (fresh / "config").mkdir(parents=True)
    args, environ = [], {"TRANSCRIBE_HOME": str(fresh)}
    if way == "flag":
        args = flag
    elif way == "env":
        environ.update(env)
    else:
        (fresh / "config" / "config.toml").write_text(line + "\n")

    result = run_cli(*args, str(SAMPLES / NOTE), env=environ)

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [error] = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")] or [""]
    assert says in result.stderr and "Traceback" not in result.stderr
    if way != "flag" or setting not in ("device", "task"):  # argparse's own usage lines
        assert result.stderr.splitlines() == [error]
    assert not (fresh / "cache" / "models").exists(), "the model was set up"
    assert not (fresh / "data").exists(), "the store was opened"


def test_a_wrong_language_lists_the_codes_and_a_name_or_auto_is_taken(tmp_path, home):
    env = {"TRANSCRIBE_HOME": str(private_home(tmp_path / "home", home))}
    refused = run_cli("--language", "klingon", str(SAMPLES / NOTE), env=env)
    assert refused.returncode == 2
    assert " de " in refused.stderr and " en " in refused.stderr and " yue " in refused.stderr

    [named] = json_lines(run_cli("--json", "--language", "English", str(SAMPLES / NOTE),
                                 env=env).stdout)
    assert named["language"] == "en" and named["language_probability"] == 1
    env["TRANSCRIBE_LANGUAGE"] = "de"
    [detected] = json_lines(run_cli("--json", "--language", "auto", str(SAMPLES / NOTE),
                                    env=env).stdout)
    assert detected["language"] == "en" and detected["language_probability"] < 1


def test_watch_refuses_a_wrong_format_or_language_with_exit_2(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = {"TRANSCRIBE_HOME": str(tmp_path / "home")}
    for args, says in ((["-f", "txt,docx"], "'docx' is not an output format"),
                       (["--language", "klingon"], "not one Whisper knows")):
        result = run_cli("watch", str(inbox), *args, env=env)
        assert result.returncode == 2 and says in result.stderr
    env["TRANSCRIBE_WATCH_POLL_S"] = "0"
    result = run_cli("watch", str(inbox), env=env)
    assert result.returncode == 2 and "watch.poll_s must be more than 0" in result.stderr


def test_a_folder_with_a_wrong_language_fails_its_notes_with_the_reason(tmp_path, home):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    (inbox / "klingon").mkdir(parents=True)
    data = private_home(tmp_path / "home", home)
    (inbox / "klingon" / ".transcribe.toml").write_text('language = "klingon"\n')
    shutil.copy(SAMPLES / NOTE, inbox / "klingon" / NOTE)
    with watcher(inbox, out, data) as proc:
        rows = by_name(wait_for(lambda rows: any(r["state"] == "failed" for r in rows), data,
                                proc=proc))
    assert "language 'klingon' is not one Whisper knows" in rows[NOTE]["error"]
    assert rows[NOTE]["text"] is None
    assert not list(out.rglob("*.txt"))


def test_the_language_list_is_whispers():
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from transcribe.languages import LANGUAGES

    assert set(LANGUAGES) == set(_LANGUAGE_CODES)


def test_record_refuses_a_wrong_setting_before_recording(tmp_path):
    fresh = tmp_path / "home"
    result = run_cli("record", "--language", "klingon", "--seconds", "1",
                     env={"TRANSCRIBE_HOME": str(fresh)})
    assert result.returncode == 2 and "klingon" in result.stderr
    assert not (fresh / "data").exists(), "it went to the microphone before the setting"


@pytest.mark.parametrize("url", ["[", "http://[", "http://host:99999/v1", "ftp://host/v1"])
def test_a_provider_url_that_is_no_address_is_refused_and_never_saved(tmp_path, url):
    """What a hand typing into the TUI's URL field leaves half-way: refused in one line,
    the saved settings left as they were, the host shown without a crash."""
    from transcribe.settings import Paths, Settings, save_settings, url_host
    from transcribe.errors import SettingsError

    paths = Paths.from_env({"TRANSCRIBE_HOME": str(tmp_path)})
    save_settings(paths, {"cloud": {"allow": True, "base_url": "http://127.0.0.1:8000/v1"}})
    before = paths.config_file.read_text()
    with pytest.raises(SettingsError, match="not a provider's address"):
        save_settings(paths, {"cloud": {"base_url": url}})
    assert paths.config_file.read_text() == before
    assert Settings.load({"TRANSCRIBE_HOME": str(tmp_path)}).cloud.host == "127.0.0.1"
    with pytest.raises(SettingsError, match="not a provider's address"):
        Settings.load({"TRANSCRIBE_HOME": str(tmp_path), "TRANSCRIBE_CLOUD_BASE_URL": url})
    assert url_host(url) == url or url_host(url) == "host"
