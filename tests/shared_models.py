"""Where the real pretrained models are, and whether they must be there.

An importable module (not conftest.py), so that test files and tests/hil/conftest.py
can share it without two modules named "conftest" clashing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("MOTE_MODELS_DIR", ROOT.parent / "shared" / "models"))
# .ci/run sets MOTE_REQUIRE_MODELS=1: there a missing model is a failure, not a skip.
REQUIRE_MODELS = os.environ.get("MOTE_REQUIRE_MODELS") == "1"


def model_path(relative: str) -> Path:
    """Path of a shared model file or folder; skips (or fails under CI) if absent."""
    path = MODELS_DIR / relative
    if not path.exists():
        message = f"model {path} not found (set MOTE_MODELS_DIR)"
        if REQUIRE_MODELS:
            pytest.fail(message)
        pytest.skip(message)
    return path
