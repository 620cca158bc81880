"""windows/ is the pure core: it imports only the standard library, numpy and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

WINDOWS = Path(__file__).resolve().parents[2] / "windows"
ALLOWED_THIRD_PARTY = {"numpy"}


def test_windows_imports_no_io_layer_or_client_library() -> None:
    offenders = []
    for path in sorted(WINDOWS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "windows" or top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names:
                    continue
                offenders.append(f"{path.name}: {name}")
    assert offenders == []
