"""Run the CLI or the library with an audit hook that records every network attempt.

    python tests/no_network.py REPORT cli ARGS...
    python tests/no_network.py REPORT library FILE

Every `socket.connect`, `socket.getaddrinfo` and friends is written to REPORT
and refused. An empty REPORT means the process never tried to reach anything.
"""

import sys

EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
          "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg", "socket.bind"}


def main() -> int:
    report_path, mode, *rest = sys.argv[1:]
    report = open(report_path, "a", buffering=1)

    def hook(event, args):
        if event in EVENTS:
            report.write(f"{event} {args!r}\n")
            raise PermissionError(f"network access during a no-network run: {event}")

    sys.addaudithook(hook)
    if mode == "cli":
        from transcribe.cli import main as cli_main

        return cli_main(rest)
    from transcribe import transcribe_file
    from transcribe.errors import TranscribeError

    try:
        print(transcribe_file(rest[0]).text)
    except TranscribeError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
