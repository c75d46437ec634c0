"""Every complete Python example in the guides runs, so the docs cannot rot.

A fenced block opened with ```python is a complete example and is executed on its own; a block
that is only a fragment is fenced as ```py instead and skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    ROOT / "docs" / "sdk.md",
    ROOT / "docs" / "errors.md",
    ROOT / "docs" / "versioning.md",
    ROOT / "packages" / "dativo-plugin-sdk" / "README.md",
]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _examples() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for number, match in enumerate(FENCE.finditer(text), start=1):
            found.append((f"{document.relative_to(ROOT)}#{number}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "code"), _examples(), ids=[w for w, _ in _examples()])
def test_example_runs(where: str, code: str) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_example_{abs(hash(where))}"}
    exec(compile(code, where, "exec"), namespace)
