"""Our service from two checkouts, side by side: did a change cost CPU per request?

On a shared machine two runs of bench/serve_load.py minutes apart differ by more than
most changes do. Here both services run at once, pinned to the same core, and short
``wrk`` runs alternate between them (A B, B A, ...), so both see the same neighbours;
the median CPU time per request (the server's process tree, psutil) over the rounds is
compared, with req/s beside it::

    git worktree add /tmp/before HEAD~1
    python bench/serve_ab.py --a before=/tmp/before --b after=. --payloads array,png
    python bench/serve_ab.py --a one=. --b two=. --quick --out /tmp/x.json  # proves it runs

Prints a table and writes bench/results/serve_ab.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from http_harness import (  # bench/ is sys.path[0]
    OURS,
    PAYLOADS,
    REPO,
    checkout,
    payloads,
    server,
    wrk,
)

from mnist_mlops.core.fileio import write_json

SERVER_CORE, LOAD_CORE = 0, 1
CONNECTIONS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, metavar="NAME=DIR")
    parser.add_argument("--b", required=True, metavar="NAME=DIR")
    parser.add_argument("--model", type=Path, default=REPO / "models/model.onnx")
    parser.add_argument("--payloads", default="array,png", help=f"some of {','.join(PAYLOADS)}")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="per wrk run")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/serve_ab.json")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s: proves it runs")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    trees = dict([checkout(args.a), checkout(args.b)])
    rows: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        bodies = payloads(folder)
        served = {}
        for name, tree in trees.items():
            (folder / name).mkdir()
            served[name] = stack.enter_context(
                server(OURS, tree, args.model.resolve(), SERVER_CORE, folder / name)
            )
        for kind in args.payloads.split(","):
            cells: dict[str, list[dict]] = {name: [] for name in served}
            for url, pid in served.values():  # warm-up, discarded
                wrk(url, bodies[kind], CONNECTIONS, 1, LOAD_CORE, 0, folder, pid)
            for turn in range(args.rounds):
                for name in list(served)[:: 1 if turn % 2 == 0 else -1]:
                    url, pid = served[name]
                    cell = wrk(url, bodies[kind], CONNECTIONS, args.seconds, LOAD_CORE, 0,
                               folder, pid)  # fmt: skip
                    cells[name].append(cell)
            rows[kind] = {
                name: {"cpu_us": statistics.median(c["cpu_us"] for c in runs),
                       "rps": statistics.median(c["rps"] for c in runs),
                       "failed": sum(c["non_2xx"] + c["errors"] for c in runs), "runs": runs}
                for name, runs in cells.items()
            }  # fmt: skip
    a, b = trees
    head = f"payload | {a} CPU/req | {b} CPU/req | {b}/{a} CPU | {a} req/s | {b} req/s"
    lines = [head, "-" * len(head)]
    for kind, row in rows.items():
        lines.append(f"{kind:7s} | {row[a]['cpu_us']:8.0f} us | {row[b]['cpu_us']:8.0f} us | "
                     f"{row[b]['cpu_us'] / row[a]['cpu_us']:8.3f} | {row[a]['rps']:7.0f} | "
                     f"{row[b]['rps']:7.0f}")  # fmt: skip
        for name in (a, b):
            if row[name]["failed"]:  # a 404 or 5xx is cheap: its CPU/request means nothing
                lines.append(
                    f"  ! {name} answered {row[name]['failed']} {kind} requests with errors"
                )
    print("\n".join(lines))
    write_json(args.out, {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_1min": os.getloadavg()[0],  # other users share the cores
        "checkouts": {n: str(t) for n, t in trees.items()}, "rounds": args.rounds,
        "seconds_per_run": args.seconds, "connections": CONNECTIONS, "results": rows,
    })  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
