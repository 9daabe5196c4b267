"""Checks shared by the CSAF tests: the official schema (jsonschema) and the BSI's reference
validator of the CSAF 2.0 mandatory tests (§6.1), run under Node from tests/csaf_validator."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from patchgate.services.advisories import validation

VALIDATOR = Path(__file__).parent / "csaf_validator"


def reference_validation(documents: dict[str, dict[str, Any]], folder: Path) -> dict[str, Any]:
    """Run the reference validator on each document; {name: {"isValid", "errors", "ran"}}."""
    node = shutil.which("node")
    if node is None or not (VALIDATOR / "node_modules" / "@secvisogram").is_dir():
        pytest.fail("the CSAF reference validator is not installed: run `make test-deps`")
    files = {}
    for name, doc in documents.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        files[str(path)] = name
    proc = subprocess.run(
        [node, str(VALIDATOR / "run.mjs"), *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=VALIDATOR,
    )
    return {files[k]: v for k, v in json.loads(proc.stdout).items()}


def assert_valid_csaf(documents: dict[str, dict[str, Any]], folder: Path) -> None:
    """Every document passes the official CSAF 2.0 schema and every mandatory test."""
    for name, doc in documents.items():
        assert validation.document_problems(doc) == [], name
    results = reference_validation(documents, folder)
    for name, result in results.items():
        assert result["errors"] == [] and result["isValid"], (name, result["errors"])
        assert any(t.startswith("mandatoryTest_6_1_27") for t in result["ran"])
