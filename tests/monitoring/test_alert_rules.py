"""The Prometheus alert rules, unit-tested by promtool: each fires and each stays quiet.

deploy/prometheus/alerts_cases.yml holds the series and the expected alerts (labels
only); scripts/render_alert_tests.py adds each alert's annotations from alerts.yml (their
one home) and writes alerts_test.yml, the file an operator runs. These tests check that
the shipped file is current and run ``promtool test rules`` on it as it is, from the
repository root as the docs say (Debian's prometheus package ships promtool).
That the metrics the rules read are really on /metrics is checked against a served
process in tests/serving/test_monitoring_http.py.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_mlops.data.idx import parse_idx
from support import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
CASES = ROOT / "deploy" / "prometheus" / "alerts_cases.yml"
SHIPPED = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
RENDER = ROOT / "scripts" / "render_alert_tests.py"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: run scripts/install_system_packages.sh (prometheus)")
    return path


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def test_the_rules_file_is_valid():
    done = subprocess.run([promtool(), "check", "rules", str(RULES)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    kinds: dict[str, set[str]] = {name: set() for name in alerts()}
    for case in yaml.safe_load(CASES.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            kinds[check["alertname"]].add("fires" if check["exp_alerts"] else "quiet")
    assert kinds == {name: {"fires", "quiet"} for name in alerts()}


def test_the_shipped_test_file_is_current():
    done = subprocess.run([sys.executable, str(RENDER), "--check"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_shipped_test_file_carries_every_annotation():
    annotations = {name: rule.get("annotations", {}) for name, rule in alerts().items()}
    for case in yaml.safe_load(SHIPPED.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            for expected in check["exp_alerts"]:
                assert expected["exp_annotations"] == annotations[check["alertname"]]


def test_promtool_passes_the_shipped_file_as_it_is():
    done = subprocess.run([promtool(), "test", "rules", str(SHIPPED.relative_to(ROOT))],
                          cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "SUCCESS" in done.stdout


def test_the_reference_digit_mix_is_the_mnist_test_split():
    """The shares in the rules are the MNIST test labels' counts / 10,000 (real data)."""
    folder = Path(os.environ.get("MNIST_MIRROR") or ROOT.parent / "shared" / "mnist")
    labels_file = folder / "t10k-labels-idx1-ubyte.gz"
    if not labels_file.is_file():
        pytest.skip(f"the real MNIST test labels are not at {labels_file} (set MNIST_MIRROR)")
    labels = parse_idx(gzip.decompress(labels_file.read_bytes()), labels_file.name)
    shares = {
        rule["labels"]["digit"]: float(rule["expr"].removeprefix("vector(").removesuffix(")"))
        for rule in rules()
        if rule.get("record") == "mnist:reference_digit_share"
    }
    expected = np.bincount(labels, minlength=10) / len(labels)
    assert [shares[str(d)] for d in range(10)] == pytest.approx(expected.tolist(), abs=1e-9)
