"""core/ must run where streamlit is absent (the GPU box, scripts): importing it must not pull streamlit in."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import core
from conftest import ROOT


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(core.__path__, prefix="core.") if not m.name.endswith("__main__"))


def test_every_core_module_imports_without_streamlit() -> None:
    modules = core_modules()
    assert "core.ingest" in modules and "core.store" in modules
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "import core.__main__\n"
        + "assert 'streamlit' not in sys.modules, sorted(m for m in sys.modules if m.startswith('streamlit'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_core_source_mentions_streamlit() -> None:
    offenders = [p.name for p in (ROOT / "core").rglob("*.py") if "import streamlit" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_pages_hold_no_sql() -> None:
    """Pages call core; SQL lives in core as named functions with bound values."""
    for page in (ROOT / "pages").glob("*.py"):
        text = page.read_text(encoding="utf-8").upper()
        assert "SELECT " not in text and "INSERT " not in text and ".EXECUTE(" not in text, page.name
