"""The core stands on its own: no Textual, and light commands stay light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

CORE_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "transcribe").rglob("*.py") if p.stem != "__main__")


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_without_textual(module):
    code = (f"import sys, {module}; "
            "bad = [m for m in ('textual', 'tui') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_help_imports_nothing_heavy():
    code = ("import sys, contextlib, io\n"
            "from transcribe import cli\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    cli.main(['--help'])\n"
            "heavy = [m for m in ('numpy', 'av', 'faster_whisper', 'ctranslate2', 'httpx',"
            " 'textual', 'rich') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
