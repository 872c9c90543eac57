"""Import direction: `app` never imports torch, lightning or the worker package."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
FORBIDDEN = ("torch", "lightning", "worker")
FORBIDDEN_LINE = re.compile(r"^\s*(import|from)\s+(torch|lightning|worker)\b", re.MULTILINE)

# Imports app.cli and every module under app/, then reports what got loaded.
PROBE = """
import importlib, json, pkgutil, sys
import app, app.cli
names = [m.name for m in pkgutil.walk_packages(app.__path__, "app.")]
for name in names:
    if not name.endswith(".__main__"):
        importlib.import_module(name)
loaded = sorted(
    m for m in sys.modules if m.split(".")[0] in {"torch", "lightning", "worker"}
)
print(json.dumps({"modules": names, "forbidden": loaded}))
"""


def test_no_app_source_line_imports_torch_lightning_or_worker() -> None:
    offenders = [
        f"{path.relative_to(APP.parent)}:{text.count(chr(10), 0, match.start()) + 1}"
        for path in sorted(APP.rglob("*.py"))
        for text in [path.read_text(encoding="utf-8")]
        for match in FORBIDDEN_LINE.finditer(text)
    ]
    assert offenders == []


def test_importing_all_of_app_loads_no_torch_lightning_or_worker() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=APP.parent,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert "app.cli" in report["modules"]
    assert "app.study.jobs" in report["modules"]
    assert report["forbidden"] == []
