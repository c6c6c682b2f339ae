"""The routing policy: where cloud consent is checked, and when the cloud is used.

Audio leaves the machine only when the user allowed cloud use and one of these
holds (the reason is recorded on the transcript and in the upload log):

- the user asked for the cloud engine for this file (`--engine cloud`);
- the local model cannot be found or loaded;
- the local engine failed on this file;
- the local result is low-confidence: its duration-weighted mean log-probability
  is below `[cloud] low_confidence_logprob` (default -1.0, Whisper's own
  `log_prob_threshold`), and `[cloud] on_low_confidence` is on (the default).
  A note with no speech is not low-confidence: silence stays local. A note
  whose text looped (`quality.py`) is low-confidence too.

Otherwise the local result stands. Without consent no cloud client is built,
so no code path here can open a connection.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import CloudNotAllowed
from .settings import Settings
from .transcript import Transcript

log = logging.getLogger(__name__)

NOT_ALLOWED = ("cloud use is off: allow it with --cloud, TRANSCRIBE_CLOUD_ALLOW=1, "
               "or `allow = true` under [cloud] in {config}")


class CloudPolicy:
    def __init__(self, settings: Settings, transport=None) -> None:
        self.settings = settings
        self._transport = transport
        self._client = None

    @property
    def allowed(self) -> bool:
        return self.settings.cloud.allow

    @property
    def upload_log(self) -> Path:
        return self.settings.paths.data_dir / "cloud-uploads.jsonl"

    def client(self):
        """The cloud client, built on first use and only with consent."""
        if not self.allowed:
            raise CloudNotAllowed(NOT_ALLOWED.format(config=self.settings.paths.config_file))
        if self._client is None:
            from .cloud import CloudClient

            self._client = CloudClient(self.settings.cloud, self.upload_log,
                                       transport=self._transport)
        return self._client

    def reason_to_upload(self, local: Transcript) -> str | None:
        """Why a good-enough local result should still go to the cloud, if it should."""
        if not self.allowed:
            return None
        cloud = self.settings.cloud
        mean = local.mean_logprob
        if cloud.on_low_confidence and mean is not None and mean < cloud.low_confidence_logprob:
            return f"local result was low-confidence (mean log-prob {mean:.2f})"
        if cloud.on_low_confidence and local.looped:
            return "local result was low-confidence (the model repeated itself)"
        return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
