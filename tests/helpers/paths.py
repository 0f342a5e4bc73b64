"""Paths the tests share: the repository root, its config folder and the test data."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
FIXTURES = ROOT / "tests" / "fixtures"
