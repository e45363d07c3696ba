"""Registry: the promotion history, and moving the champion or challenger by hand.

    python -m pipeline.registry history [--json]
    python -m pipeline.registry promote VERSION --reason "the gate's photo set was mislabelled"
    python -m pipeline.registry rollback --reason "v7 answers 1 for every thin 7"
    python -m pipeline.registry challenger VERSION      # or: challenger --clear
    python -m pipeline.registry users     # on a server with authentication, as its admin

Every move goes through the champion gate's lock and is recorded in the registry (time,
from, to, action, user, command, reason, both versions' metrics); ``history`` prints that
record. ``promote`` refuses a version without a card matching its SHA-256 (re-run the
export stage), ``rollback`` goes back to the champion before the current one and refuses
when there is none. A service following ``models:/<model>@champion`` switches on its next
look. The registry is params.yaml's ``mlflow`` section; ``$MLFLOW_TRACKING_URI`` wins.

``users`` creates the two users a team's server with authentication needs (the services'
READ-only one and the pipeline's, which may move the champion) and grants them their
permissions (``registry.access``): the admin's and the users' passwords come from the
environment (``MLFLOW_AUTH_ADMIN_PASSWORD``, ``MNIST_SERVING_PASSWORD``,
``MNIST_PIPELINE_PASSWORD``). A user the server refuses a move is told so in one line.
"""

import argparse
import json
import os

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import MlflowConfig, load_params
from mnist_mlops.registry import access, aliases, history
from mnist_mlops.registry.aliases import CHALLENGER, CHAMPION
from mnist_mlops.registry.connect import access_errors, connect
from mnist_mlops.tracking.runs import resolve_tracking_uri

# A registry that does not answer says so in seconds, not after MLflow's retries; a card's
# download draws no progress bar over the one line the command answers with.
ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def main() -> None:
    args = _parser().parse_args()
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    cfg = MlflowConfig.from_params(load_params(args.params))
    uri, model = resolve_tracking_uri(cfg.tracking_uri), cfg.registered_model
    if args.command == "users":
        admin, passwords = access.passwords_from(os.environ)
        print("\n".join(access.grant_team(uri, model, cfg.experiment, admin, passwords)))
        return
    with access_errors(uri, f"move the aliases of {model}"):
        _registry_command(args, uri, model)


def _registry_command(args: argparse.Namespace, uri: str, model: str) -> None:
    if args.command == "history":
        client = connect(uri, model)
        events = history.events(client, model)
        now = {a: aliases.alias_version(client, model, a) for a in (CHAMPION, CHALLENGER)}
        print(_as_json(model, now, events) if args.json else _table(model, uri, now, events))
        return
    if args.command == "promote":
        event = aliases.promote(uri, model, args.version, reason=args.reason)
    elif args.command == "rollback":
        event = aliases.rollback(uri, model, reason=args.reason)
    else:
        version = None if args.clear else args.version
        event = aliases.set_challenger(uri, model, version, reason=args.reason)
    print(_moved(model, event))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    commands = parser.add_subparsers(dest="command", required=True)
    shown = commands.add_parser("history", help="every alias move, oldest first")
    shown.add_argument("--json", action="store_true", help="the events as JSON")
    promote = commands.add_parser("promote", help="make VERSION the champion")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True, help="why, for the record")
    back = commands.add_parser("rollback", help="back to the champion before this one")
    back.add_argument("--reason", required=True, help="why, for the record")
    challenger = commands.add_parser("challenger", help="set or clear the challenger alias")
    which = challenger.add_mutually_exclusive_group(required=True)
    which.add_argument("version", nargs="?")
    which.add_argument("--clear", action="store_true")
    challenger.add_argument("--reason", default="", help="why, for the record")
    commands.add_parser("users", help="create the services' and the pipeline's users")
    return parser


def _moved(model: str, event: history.AliasEvent) -> str:
    before = f"v{event.from_version}" if event.from_version else "none"
    after = f"v{event.to_version}" if event.to_version else "none"
    return f"{model}@{event.alias}: {before} -> {after} ({event.action} #{event.number})"


def _table(model: str, uri: str, now: dict, events: list[history.AliasEvent]) -> str:
    state = ", ".join(f"{a} {'v' + v if v else 'none'}" for a, v in now.items())
    rows = [("#", "time (UTC)", "alias", "action", "from", "to", "user", "reason")]
    for e in events:
        rows.append((str(e.number), e.time.replace("T", " ").rstrip("Z"), e.alias, e.action,
                     f"v{e.from_version}" if e.from_version else "-",
                     f"v{e.to_version}" if e.to_version else "-", e.user, e.reason))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [_row(rows[0], widths)]
    for row, e in zip(rows[1:], events, strict=True):
        indent = " " * (widths[0] + 2)
        lines += [_row(row, widths), f"{indent}{e.command}"]
        compared = _compared(e.metrics)
        lines += [f"{indent}{compared}"] if compared else []
    empty = ["(no alias moves recorded yet)"] if not events else []
    return "\n".join([f"{model} at {uri}: {state}", *lines, *empty])


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]


def _compared(metrics: dict) -> str:
    """``test_accuracy 0.9748 -> 0.9655, field_photo ...``: the numbers the move traded."""
    before, after = metrics.get("from") or {}, metrics.get("to") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ""
    keys = sorted(set(before) | set(after), key=lambda k: (k != "test_accuracy", k))
    return ", ".join(f"{k} {_num(before.get(k))} -> {_num(after.get(k))}" for k in keys)


def _num(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _as_json(model: str, now: dict, events: list[history.AliasEvent]) -> str:
    data = {"model": model, "aliases": now, "events": [e.as_dict() for e in events]}
    return json.dumps(data, indent=2)


if __name__ == "__main__":
    run_stage(main)
