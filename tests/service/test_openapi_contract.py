"""The OpenAPI document is the contract: schemathesis checks a real ``bentoml serve`` against it.

``schemathesis run <url>/docs.json --checks all`` generates valid and invalid requests
for every operation from the document and fails on any answer the document does not
describe (status, body schema, content type), any 5xx, and any invalid request that is
accepted. Settings: schemathesis.toml at the repository root.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bento_process import REPO, Served, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(model_path, tmp_path_factory.mktemp("bentoml_home")) as server:
        yield server


def test_every_error_answer_is_documented_as_an_error_body(served):
    doc = httpx.get(f"{served.url}/docs.json").json()
    for route in ("/predict", "/predict_array", "/predict_batch"):
        responses = doc["paths"][route]["post"]["responses"]
        assert {"200", "400", "408", "413", "415", "422", "429", "503"} <= set(responses)
        for status, response in responses.items():
            schema = response["content"]["application/json"]["schema"]
            if status != "200":
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (route, status)


def test_schemathesis_finds_nothing_with_all_checks(served, tmp_path):
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{served.url}/docs.json",
        "--checks", "all", "--max-examples", "40", "--seed", "11", "--no-color",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Tested: 8" in result.stdout
