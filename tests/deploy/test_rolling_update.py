"""A rolling update under load loses nothing: no failed request, log record or correction.

Two replicas behind nginx (tests/support/replicas.py) are replaced one at a time by
``deploy/nginx/replicas.sh roll`` with a new image tag (the same build tagged again: the
test checks every container was replaced) while

* wrk (pinned to core 1; the replicas and nginx to core 0) POSTs a JSON digit to
  /predict_array through nginx as fast as they answer, on kept-alive connections as
  ordinary clients hold them (roll never reloads nginx, which would close them), and its
  Lua script writes down the request id of every answer it got;
* a correction client asks for a prediction of a drawn digit through nginx, waits until
  the store's index has the request, and corrects it through nginx, again and again.

Then: wrk saw no failure (no non-2xx, no socket error), every request id answered to wrk
or the client is in the shared inference log once the writers flushed, every answer of the
client's was 200 and every correction it was told was stored is in the store. The roll's
switch time (first replica down to last replica up) and the counts are printed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from serving.schemas import example_pixels
from support.replicas import Deployment, deployment, logged_ids, wait_indexed
from support.serving_image import podman

pytestmark = pytest.mark.slow

NEW_TAG = "localhost/mnist-mlops:rolled"
LOAD_CORE = "1"
CONNECTIONS = 4
LOG_HANG_S = 120  # the writers flush every 0.2 s; a guard for a loaded machine
# nginx's error.log lines of a replica going away or coming back, counted and printed.
NGINX_EVENTS = ("Connection refused", "reset by peer", "prematurely closed", "timed out",
                "no live upstreams")  # fmt: skip
# Writes every answered request id (one line each) and wrk's counts as one JSON line.
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("%(body)s", "rb"); wrk.body = f:read("*all"); f:close()
local ids
function init(args) ids = io.open(args[1], "w") end
function response(status, headers, body)
  local id = body:match('"request_id"%%s*:%%s*"(%%x+)"')
  if id then ids:write(id, "\\n"); ids:flush() end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %%d, "non_2xx": %%d, "socket_errors": %%d, '
    .. '"seconds": %%f}\\n', summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, summary.duration / 1e6))
end
"""


@pytest.fixture(scope="module")
def replicas(serving_image: str, team_store: str) -> Iterator[Deployment]:
    # The correction client is one address correcting in a loop: no rate bound here.
    settings = {"MNIST_FEEDBACK_DB": team_store, "MNIST_TRUSTED_PROXIES": "127.0.0.1",
                "MNIST_FEEDBACK_RATE": "1000", "MNIST_FEEDBACK_BURST": "1000"}  # fmt: skip
    with deployment(serving_image, 2, settings) as served:
        yield served


@pytest.fixture(scope="module")
def new_tag(serving_image: str) -> Iterator[str]:
    """The "new version": the same build under another tag, untagged after (the image
    itself stays, it is the session's)."""
    podman("tag", serving_image, NEW_TAG)
    yield NEW_TAG
    podman("untag", NEW_TAG, NEW_TAG, check=False)


@dataclass
class Corrector:
    """Predicts and corrects through nginx in a thread until stopped; keeps every outcome."""

    url: str
    store_uri: str
    png: bytes
    answered: list[str] = field(default_factory=list)  # request ids of 200 predictions
    stored: dict[str, int] = field(default_factory=dict)  # request id -> digit, on a 200
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                try:
                    self._once(client)
                except BaseException as exc:  # pytest.fail's too: a finding, not a dead thread
                    self.failures.append(repr(exc))

    def _once(self, client: httpx.Client) -> None:
        files = {"image": ("seven.png", self.png, "image/png")}
        answer = client.post("/predict", files=files)
        if answer.status_code != 200:
            self.failures.append(f"/predict {answer.status_code}: {answer.text[:200]}")
            return
        request_id, digit = answer.json()["request_id"], (answer.json()["digit"] + 1) % 10
        self.answered.append(request_id)
        wait_indexed(self.store_uri, request_id)
        reply = client.post("/feedback", json={"request_id": request_id, "digit": digit})
        if reply.status_code != 200:
            self.failures.append(f"/feedback {reply.status_code}: {reply.text[:200]}")
            return
        self.stored[request_id] = digit


def wait_for(condition, what: str, hang_s: float = 120) -> None:
    deadline = time.monotonic() + hang_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {hang_s} s"
        time.sleep(0.1)


def test_a_rolling_update_under_load_loses_nothing(
    replicas, new_tag, team_store, digit_png, tmp_path
):
    started = time.monotonic()
    before = replicas.containers()
    body, ids_file, script = (
        tmp_path / "array.json",
        tmp_path / "wrk-ids.txt",
        tmp_path / "load.lua",
    )
    body.write_text(json.dumps({"pixels": example_pixels()}))
    script.write_text(LUA % {"body": body})
    corrector = Corrector(replicas.url, team_store, digit_png)
    thread = threading.Thread(target=corrector.run, daemon=True)
    wrk = subprocess.Popen(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", "-d1200s", "--timeout",
         "30s", "-s", str(script), f"{replicas.url}/predict_array", "--", str(ids_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        thread.start()
        wait_for(lambda: ids_file.exists() and ids_file.stat().st_size > 0, "wrk's first answer")
        wait_for(lambda: len(corrector.stored) > 0, "the first correction")

        rolled = replicas.script("roll", new_tag)
        print(f"\n{rolled.stderr}{rolled.stdout}", end="")
        after_roll = len(corrector.stored)
        wait_for(lambda: len(corrector.stored) > after_roll, "a correction after the roll")
    finally:
        corrector.stop.set()
        wrk.send_signal(signal.SIGINT)  # wrk stops, prints its summary and done()'s line
        out, _ = wrk.communicate(timeout=60)
        thread.join(timeout=120)

    counts = json.loads(next(line for line in out.splitlines() if line.startswith("WRK "))[4:])
    wrk_ids = ids_file.read_text().split()
    switch_s = float(rolled.stdout.split(" in ")[-1].split()[0])
    # Every container was replaced by one of the new tag.
    after = replicas.containers()
    assert all(after[name][0] != before[name][0] for name in before), (before, after)
    assert {image for _, image in after.values()} == {new_tag}
    # No request failed.
    assert counts["non_2xx"] == 0 and counts["socket_errors"] == 0, out
    assert not corrector.failures, corrector.failures
    # No log record lost: every answered id is logged, once (the writers flush on their own).
    answered = set(wrk_ids) | set(corrector.answered)
    assert len(answered) == len(wrk_ids) + len(corrector.answered)
    logged: list[str] = []

    def all_logged() -> bool:
        logged[:] = logged_ids(replicas.log_dir)
        return answered <= set(logged)

    wait_for(all_logged, f"{len(answered - set(logged))} answered requests logged", LOG_HANG_S)
    assert len(logged) == len(set(logged)), "a record logged twice"
    # The rest were answered after wrk stopped reading (SIGINT) or the client stopped.
    assert len(logged) - len(answered) <= CONNECTIONS + 1
    # No correction lost: every one answered 200 is in the shared store, with its input.
    store = CorrectionsStore(team_store)
    in_store = {row.request_id: row for row in store.corrections()}
    store.close()
    missing = {i for i in corrector.stored if i not in in_store}
    assert not missing, missing
    assert all(in_store[i].digit == d and in_store[i].pixels for i, d in corrector.stored.items())
    # What nginx met on the way (each a request it sent on to another replica).
    errors = replicas.nginx_errors(whole=True)
    met = {what: errors.count(what) for what in NGINX_EVENTS}
    print(f"nginx error.log: {met}")
    print("".join(line + "\n" for line in errors.splitlines()[:12]), end="")
    assert met["no live upstreams"] == 0, errors[-4000:]
    print(
        f"rolling update under load: wrk {counts['requests']} answers in {counts['seconds']:.0f} s "
        f"({counts['non_2xx']} non-2xx, {counts['socket_errors']} socket errors); corrector "
        f"{len(corrector.answered)} predictions, {len(corrector.stored)} corrections, "
        f"{len(corrector.failures)} failed; records logged {len(logged)} of "
        f"{len(answered)} answered + {len(logged) - len(answered)} answered after wrk "
        f"stopped reading, lost 0; corrections lost {len(missing)}; switch time {switch_s:.1f} s; "
        f"test {time.monotonic() - started:.0f} s"
    )


def test_roll_refuses_an_unknown_tag_and_a_single_replica(replicas, new_tag):
    """The script's own refusals come before it touches anything: no container replaced."""
    before = replicas.containers()
    refused = replicas.script("roll", "localhost/mnist-mlops:no-such-tag", check=False)
    assert refused.returncode == 1 and "no image" in refused.stderr
    conf = replicas.home / "replicas.conf"
    text = conf.read_text()
    try:
        conf.write_text("\n".join(text.splitlines()[:2]) + "\n")  # the comment + one server
        refused = replicas.script("roll", new_tag, check=False)
        assert refused.returncode == 1 and "two replicas or more" in refused.stderr
    finally:
        conf.write_text(text)
    assert replicas.containers() == before
