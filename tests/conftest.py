"""Fixtures for the real pretrained models (see shared_models.py)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from shared_models import model_path

from mote import cli
from mote.format.blob import pack
from mote.importers import load_model
from mote.model import Model


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


@pytest.fixture(scope="session")
def stories260k_model() -> Model:
    return load_model(model_path("stories260K.bin"), model_path("tok512.bin"))


@pytest.fixture(scope="session")
def stories260k_int8_blob(stories260k_model, tmp_path_factory) -> Path:
    """stories260K packed int8 at its full context, once per session."""
    path = tmp_path_factory.mktemp("blobs") / "stories260K.mote"
    path.write_bytes(pack(stories260k_model, quant="int8"))
    return path


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    """SmolLM2-135M-Instruct as llama.cpp quantized it (Q4_1), a real chat model."""
    return model_path("smollm2-135m-instruct-q4_1.gguf")


@pytest.fixture(scope="session")
def smollm_metadata(smollm_gguf):
    """SmolLM2's vocabulary (TokenizerData) and Jinja chat template (reading the GGUF's
    metadata takes seconds: once per session)."""
    from mote.importers.gguf import load_gguf_vocabulary

    return load_gguf_vocabulary(smollm_gguf)


@pytest.fixture(scope="session")
def smollm_vocabulary(smollm_metadata):
    return smollm_metadata[0]


@pytest.fixture(scope="session")
def smollm_section(smollm_vocabulary) -> bytes:
    from mote.tokenizer import pack_tokenizer

    return pack_tokenizer(smollm_vocabulary)


def convert_smollm(tmp_path_factory, quant: str) -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) converted with --quant QUANT, with convert's
    report beside it."""
    out = tmp_path_factory.mktemp("smollm") / f"smol-{quant}.mote"
    source = model_path("smollm2-135m-instruct-q4_1.gguf")
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        assert cli.main(["convert", str(source), "-o", str(out), "--quant", quant]) == 0
    out.with_suffix(".txt").write_text(report.getvalue())
    return out


@pytest.fixture(scope="session")
def smollm_int4(tmp_path_factory) -> Path:
    return convert_smollm(tmp_path_factory, "int4")


@pytest.fixture(scope="session")
def smollm_int8(tmp_path_factory) -> Path:
    return convert_smollm(tmp_path_factory, "int8")
