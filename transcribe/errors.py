"""Errors a user can cause, each with a message a person can act on.

The whole tree, and the exit code the CLI gives each branch:

    TranscribeError                 1  (base; never raised itself)
    ├── InputError                  1  one input file cannot be transcribed
    │   ├── FileMissing                 the path does not exist or is a directory
    │   ├── FileUnreadable              permission denied or an I/O error
    │   ├── EmptyFile                   zero bytes
    │   ├── FileTooLarge                over the configured size limit
    │   ├── NotAudio                    no audio stream, or not a media file at all
    │   └── TruncatedAudio              the audio stops before its declared end
    ├── ModelError                  3  the model cannot be found, joined, loaded or downloaded
    │   └── models.HubUnreachable       `models pull` cannot reach the model hub
    ├── CloudError                  4  the cloud engine refused or failed
    │   ├── CloudNotAllowed             the user has not consented to cloud use
    │   ├── cloud.Offline               the provider cannot be reached now
    │   └── cloud.CloudAuthError        the provider refused the API key
    ├── MicrophoneError             5  no PortAudio, no input device, device busy
    ├── player.PlaybackError        1  a note cannot be played (TUI): no PortAudio, no device
    ├── OutputError                 1  the output cannot be written (read-only, disk full)
    └── SettingsError               2  a settings file or value is wrong

`InputError`s are per file: a batch reports them and goes on with the rest.
The others stop the command, because every later file would fail the same way.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_CLOUD = 4
EXIT_MICROPHONE = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class TranscribeError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = EXIT_INPUT


class InputError(TranscribeError):
    """One input cannot be transcribed; `path` names it and `reason` says why."""

    exit_code = EXIT_INPUT

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class FileMissing(InputError):
    pass


class FileUnreadable(InputError):
    pass


class EmptyFile(InputError):
    pass


class FileTooLarge(InputError):
    pass


class NotAudio(InputError):
    pass


class TruncatedAudio(InputError):
    pass


class ModelError(TranscribeError):
    exit_code = EXIT_MODEL


class CloudError(TranscribeError):
    exit_code = EXIT_CLOUD
    fatal = False  # True when every later file would fail the same way
    # True when the cloud was asked because the local model could not be used:
    # neither can transcribe, and the fault is no note's
    no_local_model = False


class CloudNotAllowed(CloudError):
    fatal = True


class MicrophoneError(TranscribeError):
    exit_code = EXIT_MICROPHONE


class SettingsError(TranscribeError):
    exit_code = EXIT_USAGE


class OutputError(TranscribeError):
    """The output cannot be written where the user asked (a read-only folder, a full
    disk); what was there before is left as it was."""

    exit_code = EXIT_INPUT


def one_line(value: object, limit: int = 200) -> str:
    """The first line of `value` as text, at most `limit` characters: for a message
    that quotes something a peer sent (a provider's error body, a socket request)."""
    lines = str(value).strip().splitlines()
    return lines[0][:limit] if lines else ""
