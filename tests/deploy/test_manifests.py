"""deploy/k8s/ says what the image and the service say: each fact has one home.

The port, the user, the log folder, the environment variables, the request and log-close
bounds are the Dockerfile's and the service's settings; the manifests repeat some of them
(Kubernetes needs them written down) and these tests fail when the two disagree. The
Secret's keys are the ones the Deployment reads, and nothing secret is a plain value;
docs/kubernetes.md gives the manifest's numbers as they are.
tests/deploy/test_kube_play.py runs the claim and the Deployment with podman.
"""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from mlflow.environment_variables import MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_USERNAME

from mnist_mlops.inference.model_card import STORE_NAME
from mnist_mlops.monitoring import settings as monitoring
from mnist_mlops.monitoring.inference_log import InferenceLog
from serving import settings as serving
from serving.front import READY_PATH
from serving.model_loading import MODEL_URI_ENV, TRACKING_URI_ENV
from support import ROOT
from support.serving_image import instructions

MANIFEST = ROOT / "deploy" / "k8s" / "mnist-mlops.yaml"
SECRET_EXAMPLE = ROOT / "deploy" / "k8s" / "examples" / "secret.yaml"
# Each kind at its current stable apiVersion (none of these is deprecated or beta).
API_VERSIONS = {
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "Service": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
}
# What only the Secret may carry: the store's URI (it holds a password) and MLflow's login.
SECRET_ENV = {"MNIST_FEEDBACK_DB", MLFLOW_TRACKING_USERNAME.name, MLFLOW_TRACKING_PASSWORD.name}
# Every variable the serving process reads: the service's and the monitoring settings',
# the model source's, and MLflow's own for the registry it follows.
READ_BY_SERVING = {
    *serving.ENV.values(),
    *monitoring.ENV.values(),
    MODEL_URI_ENV,
    TRACKING_URI_ENV,
    MLFLOW_TRACKING_USERNAME.name,
    MLFLOW_TRACKING_PASSWORD.name,
}


def documents(path: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    """The manifest's documents by kind (each kind once)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), f"{path.name}: a kind twice: {kinds}"
    return {d["kind"]: d for d in docs}


def dockerfile() -> tuple[dict[str, str], dict[str, str]]:
    """The Dockerfile's ENV variables, and its last USER, WORKDIR and EXPOSE."""
    env, last = {}, {}
    for kind, args in instructions():
        if kind == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(args))
        elif kind in ("USER", "WORKDIR", "EXPOSE"):
            last[kind] = args
    return env, last


def pod() -> dict[str, Any]:
    """The Deployment's pod spec."""
    return documents()["Deployment"]["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    (serve,) = pod()["containers"]
    return serve


def env_entries() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container()["env"]}


def test_every_kind_is_there_at_its_current_api_version():
    docs = documents()
    assert {kind: d["apiVersion"] for kind, d in docs.items()} == API_VERSIONS
    for d in docs.values():
        assert d["metadata"]["name"] and "namespace" not in d["metadata"]  # kubectl -n picks it
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert (secret["apiVersion"], secret["kind"]) == ("v1", "Secret")


def test_the_container_port_is_the_images_port():
    env, last = dockerfile()
    (port,) = container()["ports"]
    assert port["containerPort"] == int(env["BENTOML_PORT"]) == int(last["EXPOSE"])
    assert "BENTOML_PORT" not in env_entries()  # the image's, set in one place
    probes = [container()[p]["httpGet"] for p in ("readinessProbe", "livenessProbe")]
    assert {p["port"] for p in probes} == {port["name"]}
    (service_port,) = documents()["Service"]["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]


def test_readiness_is_the_services_ready_route_and_liveness_another():
    """/readyz is 200 only once a champion is loaded and checked; liveness must not wait
    for that (a registry outage would restart every pod), so it probes BentoML's /livez
    (tests/deploy/test_kube_play.py gets 200 from both paths on the running pod)."""
    assert container()["readinessProbe"]["httpGet"]["path"] == READY_PATH
    assert container()["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_it_runs_as_the_images_user_and_writes_only_its_volumes():
    _, last = dockerfile()
    uid = int(last["USER"].split(":")[0])
    context = pod()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == context["runAsGroup"] == context["fsGroup"] == uid
    own = container()["securityContext"]
    assert own["readOnlyRootFilesystem"] is True and own["allowPrivilegeEscalation"] is False
    assert own["capabilities"]["drop"] == ["ALL"]


def test_the_log_volume_is_mounted_where_the_service_writes_its_log():
    _, last = dockerfile()
    default_dir = monitoring.MonitoringSettings().log_dir
    assert not default_dir.is_absolute()  # relative to the image's WORKDIR
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod()["volumes"]}
    (log_volume,) = [n for n, v in volumes.items() if "persistentVolumeClaim" in v]
    assert PurePosixPath(mounts[log_volume]) == PurePosixPath(last["WORKDIR"]) / default_dir
    assert "MNIST_INFERENCE_LOG_DIR" not in env_entries()  # the default, said once
    claim = documents()["PersistentVolumeClaim"]
    assert volumes[log_volume]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # replicas on several nodes


def test_the_log_claim_holds_the_logs_cap_and_every_workers_open_file():
    settings = monitoring.MonitoringSettings()
    workers = documents()["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] * (
        serving.ServiceSettings().api_workers
    )
    need_mb = settings.max_total_mb + workers * settings.rotate_mb
    size = documents()["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"]
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", size).groups()
    assert int(number) * {"Mi": 1, "Gi": 1024}[unit] * 1.048576 >= need_mb, size


def test_every_variable_is_one_the_service_reads_and_secrets_come_from_the_secret():
    entries = env_entries()
    unread = set(entries) - READ_BY_SERVING
    assert not unread, f"the service reads no {sorted(unread)}"
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text())
    for name in SECRET_ENV:
        assert "value" not in entries[name], f"{name} is a plain value in the manifest"
        ref = entries[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"], f"{name}: the Secret has no {ref['key']}"
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in entries.values() if "valueFrom" in e}
    assert keys == set(secret["stringData"]), "the example Secret and the Deployment differ"
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())
    assert secret["stringData"]["feedback-db"].startswith("postgresql://")  # shared by replicas


def test_the_plain_values_pass_the_services_own_checks():
    """A value the service would refuse (MNIST_TRUSTED_PROXIES=nginx) stops every pod at
    start with one line; here it fails first."""
    plain = {name: e["value"] for name, e in env_entries().items() if "value" in e}
    monitoring.MonitoringSettings.from_env(plain)
    serving.ServiceSettings.from_env(plain)
    assert plain[MODEL_URI_ENV] == f"models:/{STORE_NAME}@champion"
    assert monitoring.MonitoringSettings.from_env(plain).trusted_proxies  # the ingress's


def test_the_grace_period_covers_the_services_drain():
    """SIGTERM after preStop: the server finishes what it holds (each request ends within
    the service's request timeout), then each worker writes its queued log records, which
    InferenceLog.close bounds. Killing it sooner loses answered requests' records."""
    pause = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    close_s = inspect.signature(InferenceLog.close).parameters["timeout"].default
    drain_s = float(pause[1]) + serving.ServiceSettings().request_timeout_s + close_s
    assert drain_s <= pod()["terminationGracePeriodSeconds"] <= drain_s + 15


def test_scaling_and_disruption_target_the_deployments_pods():
    docs = documents()
    deployment = docs["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert docs["Service"]["spec"]["selector"] == labels
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], "Deployment", deployment["metadata"]["name"])  # fmt: skip
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert container()["resources"]["requests"]["cpu"]  # utilization is a share of it
    # One pod may always be evicted, and the autoscaler never goes below two.
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"]


@pytest.mark.parametrize("path", [MANIFEST, SECRET_EXAMPLE], ids=lambda p: p.name)
def test_every_label_names_the_app(path: Path):
    for d in yaml.safe_load_all(path.read_text()):
        if d:
            assert d["metadata"]["labels"]["app.kubernetes.io/name"] == "mnist-mlops"


def test_the_kubernetes_page_gives_the_manifests_numbers():
    """docs/kubernetes.md repeats a few of the manifest's numbers for the reader; a change
    to the manifest fails here until the page says it too."""
    page = (ROOT / "docs" / "kubernetes.md").read_text()
    docs = documents()
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    (metric,) = hpa["metrics"]
    (service_port,) = docs["Service"]["spec"]["ports"]
    said = [
        f"{hpa['minReplicas']} to {hpa['maxReplicas']} replicas at "
        f"{metric['resource']['target']['averageUtilization']} % of the CPU request",
        f"terminationGracePeriodSeconds: {pod()['terminationGracePeriodSeconds']}",
        f"`preStop` pause ({container()['lifecycle']['preStop']['exec']['command'][1]} s",
        f"port {service_port['port']} to the container's `{service_port['targetPort']}` port "
        f"({container()['ports'][0]['containerPort']},",
        docs["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"].replace(
            "Gi", " GiB"
        ),
        f"uid {pod()['securityContext']['runAsUser']}",
    ]
    missing = [claim for claim in said if claim not in page]
    assert not missing, f"docs/kubernetes.md does not say: {missing}"
