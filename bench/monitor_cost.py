"""Why the inference log is ours and not ``bentoml.monitor``: what each costs a request.

Measures, in one process, the time the *request path* spends per answered image:

* ``bentoml.monitor`` with BentoML's default monitor, logging the same 17 columns the
  inference log has (its ``log()`` per column, then a synchronous write through Python
  logging into a file, in the request);
* :meth:`InferenceLog.record` (ids, a lock, an append: the record is built later);

and what our writer thread spends per record when it builds them in batches (features,
PNG, JSON, one write), which the request does not wait for but the CPU still pays.
It also notes what each does with a log folder that cannot exist (a path through a
regular file): BentoML's raises into the request. Prints a table and writes JSON::

    python bench/monitor_cost.py            # bench/results/monitor_cost.json
    python bench/monitor_cost.py --quick --out /tmp/x.json  # proves it runs
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import timeit
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]  # run as a script from anywhere

import numpy as np  # noqa: E402

from mnist_mlops.core.fileio import write_json  # noqa: E402
from mnist_mlops.monitoring.inference_log import InferenceLog  # noqa: E402
from mnist_mlops.monitoring.logfiles import encode_batch  # noqa: E402
from mnist_mlops.monitoring.records import FIELDS, Answered, ModelTag, build_batch  # noqa: E402
from mnist_mlops.monitoring.settings import MonitoringSettings  # noqa: E402


class _Quiet:
    def written(self, records: int) -> None: ...

    def dropped(self, reason: str, records: int) -> None: ...

    def failed(self, stage: str) -> None: ...


def _answers(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pixels = (rng.random((n, 28, 28)) > 0.8).astype(np.float32) * 255
    probabilities = rng.dirichlet(np.ones(10), size=n)
    return pixels, probabilities


def bentoml_monitor_us(folder: Path, repeat: int) -> float:
    import bentoml

    columns = [f for f in FIELDS if f not in ("request_id", "input")]
    options = {"log_path": str(folder)}

    def one() -> None:
        with bentoml.monitor("cost", monitor_class="default", monitor_options=options) as mon:
            for name in columns:
                mon.log(0.5, name=name, role="feature", data_type="numerical")
            mon.log("iVBORw0KGgo" * 25, name="input", role="feature", data_type="categorical")

    one()
    return 1e6 * min(timeit.repeat(one, number=repeat, repeat=5)) / repeat


def bentoml_monitor_bad_folder(folder: Path) -> str:
    import bentoml

    blocker = folder / "blocker"
    blocker.write_text("a file")
    try:
        with bentoml.monitor("bad", monitor_options={"log_path": str(blocker / "x")}) as mon:
            mon.log(1.0, name="x", role="feature", data_type="numerical")
    except Exception as exc:  # what a request would have got
        return f"raises {type(exc).__name__} into the request"
    return "no error"


def ours_record_us(folder: Path, repeat: int) -> tuple[float, float]:
    """(request-path us per image, writer us per record built in batches of 256)."""
    settings = MonitoringSettings(log_dir=folder / "ours")
    log = InferenceLog(settings, "0" * 12, "0" * 64, _Quiet())
    pixels, probabilities = _answers(1)
    request = min(
        timeit.repeat(lambda: log.record(pixels, probabilities, "/p", "json"),
                      number=repeat, repeat=5)
    )  # fmt: skip
    log.close()
    many, probs = _answers(256)
    batch = [Answered([f"{i:032x}"], 0.0, "/p", "json", many[i : i + 1], probs[i : i + 1])
             for i in range(256)]  # fmt: skip
    model = ModelTag("0" * 12, "0" * 64)
    build = min(timeit.repeat(lambda: encode_batch(build_batch(batch, model)),
                              number=20, repeat=5))  # fmt: skip
    return 1e6 * request / repeat, 1e6 * build / 20 / 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/monitor_cost.json")
    parser.add_argument("--quick", action="store_true", help="--repeat 20: proves it runs")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 20
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        theirs = bentoml_monitor_us(folder / "bentoml", args.repeat)
        bad = bentoml_monitor_bad_folder(folder)
        request, writer = ours_record_us(folder, args.repeat)
    rows = [
        ("bentoml.monitor (default), in the request", theirs),
        ("InferenceLog.record, in the request", request),
        ("InferenceLog writer thread, per record", writer),
    ]
    for name, us in rows:
        print(f"{name:45s} {us:8.1f} us per image")
    print(f"bentoml.monitor with a log folder that cannot exist: {bad}")
    write_json(args.out, {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "us_per_image": {"bentoml_monitor_request": theirs, "ours_request": request,
                         "ours_writer": writer},
        "bentoml_monitor_bad_folder": bad,
    })  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
