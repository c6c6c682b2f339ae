"""The Textual terminal UI: a client of the `transcribe` core, like the CLI."""
