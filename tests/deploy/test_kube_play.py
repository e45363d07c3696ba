"""deploy/k8s/mnist-mlops.yaml played with ``podman kube play``: the claim and the Deployment
as written, on the serving image CI builds, following a real MLflow registry.

podman 4.3 plays Pods, Deployments, PersistentVolumeClaims (as podman volumes) and
ConfigMaps; it skips Services, HorizontalPodAutoscalers and PodDisruptionBudgets
(docs/kubernetes.md says how those are checked), and it cannot read a Secret it played
itself through ``secretKeyRef`` (it stores the whole YAML where it then expects JSON), so
the test creates the Secret the way 4.3 reads one: ``podman secret create`` with a JSON
object of base64 values, under the keys of deploy/k8s/examples/secret.yaml.

What the test changes is what a site changes: the image tag, the names (unique per run),
the registry's address, the Secret's values, and host networking with a free port
(BENTOML_PORT), because this machine cannot make the bridge networks ``hostPort`` needs.
The pod then follows the registry's champion (a model the real pipeline trained,
registered as the export and field stages do) on a server with MLflow's basic auth,
signed in as the Secret's read-only user, answers a drawn 7, writes the answer's record
into the claim's volume and stores its correction in the PostgreSQL database the Secret
names.
Needs podman, runc, catatonit (podman's pause process) and mmdebstrap as root
(scripts/install_system_packages.sh).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mlflow.environment_variables import MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_USERNAME

from mnist_mlops.inference.model_card import STORE_NAME
from mnist_mlops.monitoring.log_reader import read_log
from mnist_mlops.registry.access import SERVING, grant_team
from serving.model_loading import MODEL_URI_ENV, TRACKING_URI_ENV
from support import ROOT
from support.bento_process import free_port
from support.gated import gated_export
from support.mlflow_server import mlflow_server as run_mlflow_server
from support.registry import EXPERIMENT, register_version

MANIFEST = ROOT / "deploy" / "k8s" / "mnist-mlops.yaml"
SECRET_EXAMPLE = ROOT / "deploy" / "k8s" / "examples" / "secret.yaml"
PLAYED = ("PersistentVolumeClaim", "Deployment")  # the kinds podman 4.3 plays
# What scripts/podman_image.sh passes as flags, for `kube play`, which takes no --ulimit:
# runc and cgroupfs (crun refuses hybrid cgroups), limits this sandbox lets a container set.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
READY_HANG_S = 300  # a hang guard: the pod is ready once it fetched and checked the champion
LOGGED_HANG_S = 60  # ... and the writer appends every 0.2 s


@dataclass(frozen=True)
class Played:
    """The played Deployment's one pod: its URL, its container, its log volume."""

    conf: Path  # the containers.conf podman runs with
    url: str
    container: str
    volume: str
    secret: dict[str, str]  # the Secret's values
    model_source: str  # what the pod should say it serves
    pod: dict[str, Any]  # the pod spec as played

    @property
    def serve(self) -> dict[str, Any]:
        (serve,) = self.pod["containers"]
        return serve

    def exec(self, *cmd: str) -> str:
        return podman(self.conf, "exec", self.container, *cmd)


def podman(conf: Path, *args: str, timeout: float = 120, check: bool = True) -> str:
    proc = subprocess.run(
        ["podman", *args],
        env={**os.environ, "CONTAINERS_CONF": str(conf)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, f"podman {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def site_manifest(name: str, image: str, port: int, tracking_uri: str) -> list[dict]:
    """The played kinds of the manifest, with this run's site values."""
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d and d["kind"] in PLAYED]
    claim, deployment = sorted(docs, key=lambda d: PLAYED.index(d["kind"]))
    claim["metadata"]["name"] = f"{name}-log"
    deployment["metadata"]["name"] = name
    pod = deployment["spec"]["template"]["spec"]
    (serve,) = pod["containers"]
    # podman names an emptyDir's volume after it, host-wide: this run's names are its own.
    for volume in pod["volumes"]:
        volume["name"] = f"{name}-{volume['name']}"
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["claimName"] = claim["metadata"]["name"]
    for mount in serve["volumeMounts"]:
        mount["name"] = f"{name}-{mount['name']}"
    serve["image"] = image
    for entry in serve["env"]:
        if entry["name"] == TRACKING_URI_ENV:
            entry["value"] = tracking_uri
        if "valueFrom" in entry:
            entry["valueFrom"]["secretKeyRef"]["name"] = f"{name}-secret"
    serve["env"].append({"name": "BENTOML_PORT", "value": str(port)})
    # podman 4.3 publishes each containerPort on the host as if it were a hostPort, which
    # host networking refuses; the port is checked against the image in test_manifests.py.
    del serve["ports"]
    return [claim, deployment]


@dataclass(frozen=True)
class Team:
    """The team's services the pod uses: the registry and the corrections store."""

    tracking_uri: str
    version: str  # the champion's registry version
    login: tuple[str, str]  # a registry user that may only read
    store_uri: str  # postgresql:// URI of the corrections store's database


@pytest.fixture(scope="module")
def team(trained_model: Path, tmp_path_factory) -> Iterator[Team]:
    """A real MLflow server on PostgreSQL with MLflow's basic auth, whose champion is the
    trained model, registered by the admin as the export and field stages do (int8
    served); a user that may only read it, as the pod signs in; and a database of the
    same PostgreSQL for the corrections store."""
    import psycopg

    folder = tmp_path_factory.mktemp("champion-version")
    gated_export(trained_model, folder)
    admin = ("admin", "kube-admin-password")  # MLflow wants 12 characters or more
    reader = (SERVING.username, "kube-serving-password")
    with run_mlflow_server({"MLFLOW_AUTH": "1", "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1]}) as server:
        with pytest.MonkeyPatch.context() as env:  # the admin signs in for these calls only
            env.setenv(MLFLOW_TRACKING_USERNAME.name, admin[0])
            env.setenv(MLFLOW_TRACKING_PASSWORD.name, admin[1])
            version = register_version(
                server.uri, STORE_NAME, folder / "model.onnx", served="int8", alias="champion"
            )
        # The services' read-only user, as `python -m pipeline.registry users` makes it.
        grant_team(server.uri, STORE_NAME, EXPERIMENT, admin, {SERVING: reader[1]})
        with psycopg.connect(server.database, autocommit=True) as conn:
            conn.execute("CREATE DATABASE mnist_kube")
        store = f"{server.database.rsplit('/', 1)[0]}/mnist_kube"
        yield Team(server.uri, version, reader, store)


@pytest.fixture(scope="module")
def played(serving_image: str, team: Team, tmp_path_factory) -> Iterator[Played]:
    folder = tmp_path_factory.mktemp("kube")
    conf = folder / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    port = free_port()
    name = f"mnist-kube-{port}"
    docs = site_manifest(name, serving_image, port, team.tracking_uri)
    claim, deployment = docs
    played_yaml = folder / "played.yaml"
    played_yaml.write_text(yaml.safe_dump_all(docs))
    # The Secret: the example's keys, this run's values, stored as podman 4.3 reads it.
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())["stringData"]
    values = {"feedback-db": team.store_uri,
              "mlflow-username": team.login[0], "mlflow-password": team.login[1]}  # fmt: skip
    assert set(values) == set(example)
    secret_file = folder / "secret.json"
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    secret_file.write_text(json.dumps(encoded))
    (serve,) = deployment["spec"]["template"]["spec"]["containers"]
    container = f"{name}-pod-0-{serve['name']}"  # podman's name for replica 0's container
    model_uri = next(e["value"] for e in serve["env"] if e["name"] == MODEL_URI_ENV)
    podman(conf, "secret", "rm", f"{name}-secret", check=False)
    podman(conf, "secret", "create", f"{name}-secret", str(secret_file))
    volumes = [claim["metadata"]["name"]]
    try:
        podman(conf, "kube", "play", "--network", "host", str(played_yaml), timeout=300)
        # The emptyDirs' volumes and the image's VOLUME's: kube down removes them with the pod.
        mounts = podman(
            conf, "inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", container
        )
        volumes += mounts.split()
        url = f"http://127.0.0.1:{port}"
        wait_ready(conf, url, container)
        yield Played(conf, url, container, claim["metadata"]["name"], values,
                     f"{model_uri} v{team.version}",
                     deployment["spec"]["template"]["spec"])  # fmt: skip
    finally:
        podman(conf, "kube", "down", str(played_yaml), timeout=120, check=False)
        for volume in dict.fromkeys(volumes):  # the claim's, and any kube down left
            podman(conf, "volume", "rm", volume, check=False)  # no -f: never another's pod
        podman(conf, "secret", "rm", f"{name}-secret", check=False)


def wait_ready(conf: Path, url: str, container: str) -> None:
    """Until ``/readyz`` answers 200; fails at once if the container stopped."""
    deadline = time.monotonic() + READY_HANG_S
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                print(f"\npod ready {time.monotonic() - started:.1f} s after kube play")
                return
        except httpx.TransportError:
            pass
        state = json.loads(podman(conf, "inspect", "--format", "{{json .State}}", container))
        if not state["Running"] or time.monotonic() > deadline:
            logs = podman(conf, "logs", container, check=False)[-4000:]
            why = f"exited ({state['ExitCode']})" if not state["Running"] else "never ready"
            pytest.fail(f"{container} {why} within {READY_HANG_S} s of kube play:\n{logs}")
        time.sleep(0.5)


@pytest.mark.slow
def test_the_pod_is_ready_on_its_probe_paths_with_the_registrys_champion(played, team):
    # Anonymous callers are refused: the pod read the champion with the Secret's login.
    anonymous = httpx.get(f"{team.tracking_uri}/api/2.0/mlflow/registered-models/get",
                          params={"name": STORE_NAME}, timeout=10)  # fmt: skip
    assert anonymous.status_code == 401, anonymous.text
    for probe in ("readinessProbe", "livenessProbe"):
        path = played.serve[probe]["httpGet"]["path"]
        assert httpx.get(f"{played.url}{path}", timeout=5).status_code == 200, path
    ready = httpx.get(f"{played.url}/readyz", timeout=5).json()
    assert ready["model_source"] == played.model_source, ready
    assert ready["model_precision"] == "int8", ready


@pytest.mark.slow
def test_the_pod_answers_a_drawn_digit_and_logs_it_in_the_claims_volume(played, digit_png):
    files = {"image": ("seven.png", digit_png, "image/png")}
    reply = httpx.post(f"{played.url}/predict", files=files, timeout=30)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert (answer["digit"], answer["model_source"]) == (7, played.model_source), answer
    mountpoint = podman(
        played.conf, "volume", "inspect", "--format", "{{.Mountpoint}}", played.volume
    )
    folder = Path(mountpoint.strip())
    deadline = time.monotonic() + LOGGED_HANG_S
    while answer["request_id"] not in {r["request_id"] for r in read_log(folder)}:
        files_now = sorted(p.name for p in folder.iterdir())
        assert time.monotonic() < deadline, f"{answer['request_id']} not in {files_now}"
        time.sleep(0.2)
    print(f"logged in {played.volume}: {sorted(p.name for p in folder.glob('*.arrows'))}")


@pytest.mark.slow
def test_the_pods_correction_lands_in_the_store_the_secret_names(played, team, digit_png):
    import psycopg

    files = {"image": ("seven.png", digit_png, "image/png")}
    answer = httpx.post(f"{played.url}/predict", files=files, timeout=30).json()
    body = {"request_id": answer["request_id"], "digit": 1}
    reply = httpx.post(f"{played.url}/feedback", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    with psycopg.connect(team.store_uri) as conn:
        rows = conn.execute("SELECT digit, predicted FROM mnist_corrections").fetchall()
    assert (1, 7) in rows, rows


@pytest.mark.slow
def test_the_secrets_values_reach_the_container_as_the_images_user_on_a_read_only_root(played):
    for entry in played.serve["env"]:
        if "valueFrom" in entry:
            key = entry["valueFrom"]["secretKeyRef"]["key"]
            assert played.exec("printenv", entry["name"]).strip() == played.secret[key]
    status = played.exec("cat", "/proc/1/status")  # PID 1 is the server itself
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M)[1].split()
    assert uids == [str(played.pod["securityContext"]["runAsUser"])] * 4, status
    denied = played.exec("sh", "-c", "touch /app/probe 2>&1 || true")
    assert "Read-only file system" in denied, denied
    caps = podman(played.conf, "inspect", "--format", "{{json .EffectiveCaps}}", played.container)
    assert json.loads(caps) in (None, []), caps  # drop: [ALL]


@pytest.mark.slow
def test_the_containers_limits_are_the_manifests(played):
    host = json.loads(podman(played.conf, "inspect", "--format", "{{json .HostConfig}}",
                             played.container))  # fmt: skip
    limits = played.serve["resources"]["limits"]
    assert host["Memory"] == quantity(limits["memory"])
    assert host["CpuQuota"] / host["CpuPeriod"] == quantity(limits["cpu"])


def quantity(text: str) -> float:
    """A Kubernetes quantity as these manifests write them: 1Gi, 512Mi, 2, 500m."""
    units = {"Gi": 2**30, "Mi": 2**20, "m": 1e-3}
    number, unit = re.fullmatch(r"([\d.]+)(Gi|Mi|m)?", text).groups()
    return float(number) * units.get(unit, 1)
