"""A freedesktop notification server for tests: owns org.freedesktop.Notifications on
the session bus (DBUS_SESSION_BUS_ADDRESS) and appends each notification it is sent
to a JSON-lines file, as a desktop's would show it. Clicking is a file too: a line
with a notification's id written to CLICKS makes it emit ActionInvoked(id, "default").

    python tests/notification_server.py RECORD.jsonl CLICKS.txt
"""

# (no `from __future__ import annotations`: dbus-fast reads the signatures from them)
import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusInt32, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

Strings = Annotated[list[str], DBusSignature("as")]
Hints = Annotated[dict, DBusSignature("a{sv}")]
NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


class Notifications(ServiceInterface):
    def __init__(self, record: Path) -> None:
        super().__init__(NAME)
        self.record = record
        self.last_id = 0

    @dbus_method()
    def Notify(self, app_name: DBusStr, replaces_id: DBusUInt32, app_icon: DBusStr,
               summary: DBusStr, body: DBusStr, actions: Strings, hints: Hints,
               expire_timeout: DBusInt32) -> DBusUInt32:
        self.last_id += 1
        line = {"id": self.last_id, "app": app_name, "summary": summary, "body": body,
                "actions": actions}
        with self.record.open("a") as f:
            f.write(json.dumps(line) + "\n")
        return self.last_id

    @dbus_method()
    def GetCapabilities(self) -> Strings:
        return ["body", "actions"]

    @dbus_method()
    def GetServerInformation(self) -> Annotated[list, DBusSignature("ssss")]:
        return ["test-notifications", "transcribe", "1.0", "1.2"]

    @dbus_method()
    def CloseNotification(self, id: DBusUInt32) -> None:
        self.NotificationClosed(id, 3)

    @dbus_signal()
    def ActionInvoked(self, id: DBusUInt32, action_key: DBusStr
                      ) -> Annotated[list, DBusSignature("us")]:
        return [id, action_key]

    @dbus_signal()
    def NotificationClosed(self, id: DBusUInt32, reason: DBusUInt32
                           ) -> Annotated[list, DBusSignature("uu")]:
        return [id, reason]


async def main(record: Path, clicks: Path) -> None:
    bus = await MessageBus().connect()
    service = Notifications(record)
    bus.export(PATH, service)
    await bus.request_name(NAME)
    record.touch()  # ready
    done = 0
    while True:
        await asyncio.sleep(0.1)
        lines = clicks.read_text().split() if clicks.exists() else []
        for line in lines[done:]:
            service.ActionInvoked(int(line), "default")
        done = len(lines)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
