"""Drift on any log size: what a window of the inference log costs as the log's history grows.

    python bench/drift_scale.py MNIST_DIR    # 10k, 100k, 1M: bench/results/drift_scale.json
    python bench/drift_scale.py MNIST_DIR --quick --out /tmp/x.json  # proves it runs

MNIST_DIR (default data/raw, the download stage's) holds t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (or their .gz). For each size a log folder is built in a temporary
folder through the writer's own path
(:func:`~mnist_mlops.monitoring.records.build_batch` on MNIST test digits, then
:func:`~mnist_mlops.monitoring.logfiles.encode_batch` after the stream's header, zstd as
served) into files closed past the service's ``rotate_mb``, each named after its first
batch and last modified at its last, as :class:`~mnist_mlops.monitoring.logfiles.LogFile`
leaves them. Traffic is steady, so the last hour (the window) always holds ``--window``
records and the rest is history: 1M records at 10k an hour are four days of log. The
answers are synthetic (the label's probability raised over noise): this measures reading,
not a model.

Each measurement runs in a fresh Python process, which times its work (imports apart)
and reports its peak RSS during the work (``VmHWM``, reset after the imports), and what
the work added to the RSS the imports left (``work_mb``):

* ``window``: :func:`~mnist_mlops.drift.window.load_window` on the last hour, what
  ``python -m pipeline.monitor`` reads;
* ``every_file``: the same code made to open every file (``window_files`` replaced by
  ``log_files``): what the columnar reader costs without choosing files;
* ``dicts``: the way the drift window read before: every record of every file as a dict
  (``read_log``), those in the window kept, their inputs turned into features at the end;
* ``report``: ``python -m pipeline.monitor`` on the window against a reference of the
  MNIST test digits (Evidently's comparison and HTML included).

The files were just written, so all of them are read from the page cache: a cold disk
would add to ``every_file`` and ``dicts`` in proportion to the folder, not to ``window``.
Prints a table and writes JSON (bench/results/drift_scale.json by default).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]  # run as a script from anywhere

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from mnist_mlops.core.fileio import write_json  # noqa: E402
from mnist_mlops.data.idx import parse_idx  # noqa: E402
from mnist_mlops.monitoring.features import FEATURES, batch_features  # noqa: E402
from mnist_mlops.monitoring.logfiles import STAMP, encode_batch, stream_header  # noqa: E402
from mnist_mlops.monitoring.records import Answered, ModelTag, answer_columns, build_batch  # noqa: E402
from mnist_mlops.monitoring.settings import MonitoringSettings  # noqa: E402

METHODS = ("window", "every_file", "dicts", "report")
MODEL = ModelTag("ab12cd34ef56", "ab12cd34ef56" + "0" * 52, "champion", "3")
END = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)  # the window is the hour before
MB = 1024 * 1024


def read_test_split(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test digits (N, 28, 28) uint8 and labels, through the project's IDX reader."""

    def one(name: str) -> np.ndarray:
        for path in (folder / name, folder / f"{name}.gz"):
            if path.exists():
                data = path.read_bytes()
                return parse_idx(gzip.decompress(data) if path.suffix == ".gz" else data, name)
        raise SystemExit(f"{folder}: no {name}[.gz]")

    return one("t10k-images-idx3-ubyte"), one("t10k-labels-idx1-ubyte")


def probabilities_for(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Softmax rows that mostly favour the label, with varied confidence (a model's look)."""
    logits = rng.normal(0.0, 1.0, (len(labels), 10))
    logits[np.arange(len(labels)), labels] += rng.uniform(2.0, 9.0, len(labels))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def build_log(
    folder: Path, records: int, window: int, batch_rows: int, rotate_bytes: int,
    images: np.ndarray, labels: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """``records`` records at a steady ``window`` an hour ending at END, in rotated files."""
    rng = np.random.default_rng(0)
    seconds_per_record = 3600.0 / window
    folder.mkdir(parents=True)
    header = stream_header()
    files: list[tuple[Path, float]] = []
    chunks: list[bytes] = []
    size, first = 0, 0.0

    def close(last: float) -> None:
        path = folder / f"inference-{_stamp(first)}-benchhost-{len(files)}.arrows"
        path.write_bytes(b"".join(chunks))
        os.utime(path, (last, last))
        files.append((path, last))

    started = time.perf_counter()
    when = last = 0.0
    for start in range(0, records, batch_rows):
        n = min(batch_rows, records - start)
        when = END.timestamp() - (records - start) * seconds_per_record
        picks = np.arange(start, start + n) % len(images)
        ids = [f"{start + i:032x}" for i in range(n)]
        answered = Answered(ids, when, "/predict_batch", "batch", images[picks],
                            probabilities_for(labels[picks], rng))  # fmt: skip
        data = encode_batch(build_batch([answered], MODEL, images=True))
        if chunks and size + len(data) > rotate_bytes:  # LogFile's rotation
            close(last)
            chunks, size = [], 0
        if not chunks:
            chunks, size, first = [header], len(header), when
        chunks.append(data)
        size += len(data)
        last = when
    close(when)
    return {
        "records": records,
        "files": len(files),
        "disk_mb": round(sum(p.stat().st_size for p, _ in files) / MB, 1),
        "build_s": round(time.perf_counter() - started, 2),
    }


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(STAMP)


def write_reference(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """A reference table of the MNIST test digits with the same synthetic answers."""
    answer = answer_columns(probabilities_for(labels, np.random.default_rng(1)))
    table = {"set": "test", "label": labels.astype(np.int64), **answer, **batch_features(images)}
    pd.DataFrame(table).to_parquet(path, index=False)


def write_params(path: Path) -> None:
    """The repo's params, with the reference being the test digits alone."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["monitor"]["reference_sets"] = ["test"]
    path.write_text(yaml.safe_dump(params))


# ---- the measured work, one method per fresh process ---------------------------------------


def child(method: str, folder: Path, work: Path) -> dict[str, Any]:
    """Run ``method`` once here; its seconds (imports apart), rows and this process's peak."""
    start, end = END - timedelta(hours=1), END
    if method == "report":
        import runpy

        sys.argv = ["pipeline.monitor", "--log-dir", str(folder), "--since", start.isoformat(),
                    "--until", end.isoformat(), "--reference", str(work / "reference.parquet"),
                    "--params", str(work / "params.yaml"), "--html", str(work / "drift.html"),
                    "--json", str(work / "drift.json")]  # fmt: skip
        import evidently  # noqa: F401  (imports apart, as for the other methods)

        status: object = None
        imported = _start_peak()
        began = time.perf_counter()
        try:
            runpy.run_module("pipeline.monitor", run_name="__main__")
        except SystemExit as exc:
            status = exc.code
        seconds = time.perf_counter() - began
        rows = json.loads((work / "drift.json").read_text())["rows"]
        extra = {"exit_status": status}
    else:
        from mnist_mlops.drift import window as window_module
        from mnist_mlops.monitoring.logfiles import log_files

        if method == "every_file":
            window_module.window_files = lambda folder, start, end: log_files(folder)
        imported = _start_peak()
        began = time.perf_counter()
        if method == "dicts":
            frame = _dicts_window(folder, start, end)
        else:
            frame = window_module.load_window(folder, start, end).frame
        seconds = time.perf_counter() - began
        rows, extra = len(frame), {}
    peak = _status_mb("VmHWM")
    return {"seconds": round(seconds, 3), "peak_mb": round(peak, 1),
            "work_mb": round(peak - imported, 1), "rows": rows, **extra}  # fmt: skip


def _status_mb(key: str) -> float:
    """A memory line of /proc/self/status (VmRSS: now, VmHWM: the peak), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {key} in /proc/self/status")


def _start_peak() -> float:
    """Reset this process's peak RSS to what it holds now (so that the peak measured after
    is the work's, not the imports'), and return that."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # Linux: resets VmHWM to VmRSS
    return _status_mb("VmRSS")


def _dicts_window(folder: Path, start: datetime, end: datetime) -> pd.DataFrame:
    """The drift window as it was read before: every record as a dict, window rows kept."""
    from mnist_mlops.monitoring.log_reader import ReadCounts, as_pixels, read_log

    kept = [r for r in read_log(folder, ReadCounts()) if start <= r["time"] < end]  # type: ignore[operator]
    frame = pd.DataFrame(
        {
            k: [r[k] for r in kept]
            for k in ("time", "model_version", "source", "digit", "confidence", "margin")
        }  # fmt: skip
    )
    pixels = np.stack([as_pixels(r["input"]) for r in kept]) if kept else np.zeros((0, 28, 28))
    for name, values in batch_features(pixels).items():
        frame[name] = values
    return frame[["time", "model_version", "source", "digit", "confidence", "margin", *FEATURES]]


def measure(method: str, folder: Path, work: Path) -> dict[str, Any]:
    """``method`` in a fresh interpreter: what it printed as its last line."""
    command = [sys.executable, __file__, "--child", method, str(folder), str(work)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{method} on {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    images, labels = read_test_split(Path(args.mnist_dir))
    rotate = int(args.rotate_mb * MB)
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="drift_scale-") as tmp:
            work = Path(tmp)
            write_reference(work / "reference.parquet", images, labels)
            write_params(work / "params.yaml")
            log = build_log(work / "log", size, args.window, args.batch_rows, rotate,
                            images, labels)  # fmt: skip
            print(f"built {size:,} records: {log['files']} files, {log['disk_mb']} MB, "
                  f"{log['build_s']} s", flush=True)  # fmt: skip
            log["methods"] = {m: measure(m, work / "log", work) for m in args.methods}
            rows.append(log)
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "window_records": args.window,
        "batch_rows": args.batch_rows,
        "rotate_mb": args.rotate_mb,
        "compression": "zstd",
        "rows": rows,
    }


def _machine() -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "bench"))
    from common import machine

    return machine()


def print_table(result: dict[str, Any]) -> None:
    methods = list(result["rows"][0]["methods"])
    head = f"{'records':>10s} {'files':>5s} {'MB':>7s}"
    head += "".join(f" {m + ' s':>13s} {'+MB':>6s}" for m in methods)
    print(head + f" {'every/window':>13s}")
    for row in result["rows"]:
        line = f"{row['records']:>10,d} {row['files']:>5d} {row['disk_mb']:>7.1f}"
        for m in methods:
            got = row["methods"][m]
            line += f" {got['seconds']:>13.2f} {got['work_mb']:>6.0f}"
        ms = row["methods"]
        if "window" in ms and "every_file" in ms:
            line += f" {ms['every_file']['seconds'] / ms['window']['seconds']:>12.1f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist_dir", nargs="?", default="data/raw")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--window", type=int, default=10_000, help="records in the last hour")
    parser.add_argument("--batch-rows", type=int, default=100, help="records per written batch")
    parser.add_argument("--rotate-mb", type=float, default=MonitoringSettings().rotate_mb)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", default="bench/results/drift_scale.json")
    quick = "2k and 20k records, 1k an hour, 1 MB files: proves it runs"
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "LOG", "WORK"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        method, folder, work = args.child
        print(json.dumps(child(method, Path(folder), Path(work))))
        return
    if args.quick:
        args.sizes, args.window, args.rotate_mb = [2_000, 20_000], 1_000, 1.0
    result = run(args)
    print_table(result)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
