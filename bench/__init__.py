"""Benchmarks for transcribe: `python -m bench` (see bench/run.py)."""
