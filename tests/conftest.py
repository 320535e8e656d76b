"""Fixtures for the real pretrained models (see shared_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared_models import model_path


@pytest.fixture
def stories260k() -> tuple[Path, Path]:
    return model_path("stories260K.bin"), model_path("tok512.bin")


@pytest.fixture
def ref_silu() -> Path:
    return model_path("ref-11m-silu")


@pytest.fixture
def ref_relu() -> Path:
    return model_path("ref-11m-relu")


@pytest.fixture
def mcu_silu() -> Path:
    return model_path("mcu-1m-silu")
