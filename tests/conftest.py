"""Shared test fixtures: paths to the read-only reference fixtures next to the project."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Directory of the original implementations' reference outputs (never copied into the repo)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {SHARED_FIXTURES}: clone ward next to shared/")
    return SHARED_FIXTURES
