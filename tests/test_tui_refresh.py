"""The inbox follows the store: what another process stores shows up, and while nothing
changes the store is not read (only its data_version asked)."""

from __future__ import annotations

import asyncio

from conftest import SAMPLES, private_home, run_cli
from test_tui import rows

from transcribe.settings import Settings
from tui.app import REFRESH_S, TranscribeApp


class Reads:
    """Counts the calls of one method of an object (here: the store's inbox query)."""

    def __init__(self, obj, name: str) -> None:
        self.count = 0
        original = getattr(obj, name)

        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        setattr(obj, name, counted)


async def test_the_inbox_shows_what_another_process_stored_and_reads_nothing_while_idle(
        tmp_path, home, monkeypatch):
    data = private_home(tmp_path / "home", home)
    monkeypatch.setenv("TRANSCRIBE_HOME", str(data))
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        reads = Reads(app.store, "inbox")
        await pilot.pause(4 * REFRESH_S)  # four ticks of the refresh timer
        assert reads.count == 0, "the inbox was read again while the store did not change"

        # another process, the CLI, transcribes a note into the same store
        result = await asyncio.to_thread(run_cli, str(SAMPLES / "voicemail-8k.wav"),
                                         env={"TRANSCRIBE_HOME": str(data)})
        assert result.returncode == 0, result.stderr
        for _ in range(100):
            await pilot.pause(0.1)
            if any("call me back" in r[6].lower() for r in rows(app)):
                break
        [row] = rows(app)
        assert "call me back" in row[6].lower() and row[5] == "✓ done" and row[3] == "en"

        after = reads.count
        assert after >= 1
        await pilot.pause(4 * REFRESH_S)
        assert reads.count == after, "the inbox was read again while the store did not change"
