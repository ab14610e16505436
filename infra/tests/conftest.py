from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

INFRA = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def infra_root() -> Path:
    return INFRA
