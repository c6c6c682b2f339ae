"""The engine's threads wait asleep: CTranslate2's OpenMP threads spinning between
calls cost a cold `transcribe` 3-4 times its CPU on a busy machine (README, "On a
busy machine"). The setting must be in place before CTranslate2 loads, and a
user's own choice is kept."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

PROBE = ("import os, transcribe.engine, ctranslate2; "
         "print(os.environ.get('OMP_WAIT_POLICY'))")


def policy(env: dict) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_openmp_threads_sleep_while_they_wait_unless_the_user_says_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert policy(env) == "PASSIVE"
    assert policy({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
