"""The OpenAPI document is the contract: schemathesis checks a real ``bentoml serve`` against it.

``schemathesis run <url>/docs.json --checks all`` generates valid and invalid requests
for every operation from the document and fails on any answer the document does not
describe (status, body schema, content type), any 5xx, and any invalid request that is
accepted. Settings: schemathesis.toml at the repository root.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from support.bento_process import REPO, Served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(served_model: Served) -> Served:
    """The session's shared server (tests/serving/conftest.py)."""
    return served_model


def test_every_error_answer_is_documented_as_an_error_body(served):
    doc = httpx.get(f"{served.url}/docs.json").json()
    for route in ("/predict", "/predict_array", "/predict_batch", "/predict_npy"):
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
    assert "Tested: 9" in result.stdout


def test_npy_route_takes_a_binary_body_and_answers_as_the_json_batch(served):
    paths = httpx.get(f"{served.url}/docs.json").json()["paths"]
    npy, batch = paths["/predict_npy"]["post"], paths["/predict_batch"]["post"]
    content = npy["requestBody"]["content"]
    assert npy["requestBody"]["required"] is True
    assert set(content) == {"application/x-npy", "application/octet-stream", "multipart/form-data"}
    for media in ("application/x-npy", "application/octet-stream"):
        assert content[media]["schema"] == {"type": "string", "format": "binary"}
    form = content["multipart/form-data"]["schema"]  # BentoML's client sends the file so
    assert (form["required"], form["additionalProperties"]) == (["array"], False)
    ok = npy["responses"]["200"]
    as_json = batch["responses"]["200"]["content"]["application/json"]
    assert ok["content"]["application/json"] == as_json
    binary = ok["content"]["application/x-npy"]["schema"]
    assert (binary["type"], binary["format"]) == ("string", "binary")
    assert "request_id" in binary["description"]
    assert {"X-Model-Version", "X-Model-Precision"} <= ok["headers"].keys()


def test_answers_are_documented_field_by_field(served):
    # schemathesis checks each answer against these schemas: an opaque object would let
    # any answer pass.
    paths = httpx.get(f"{served.url}/docs.json").json()["paths"]
    single = paths["/predict_array"]["post"]["responses"]["200"]["content"]["application/json"]
    assert set(single["schema"]["required"]) == {
        "digit",
        "probabilities",
        "model_version",
        "model_precision",
        "request_id",
    }
    assert single["schema"]["properties"]["probabilities"]["maxItems"] == 10
    batch = paths["/predict_batch"]["post"]["responses"]["200"]["content"]["application/json"]
    assert batch["schema"]["required"] == ["predictions"]
