"""``aimass`` — the command line of the contract (run, publish, simulate, train, models, tail, replay), and of the
trusted edge (token, link)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.settings import SERVICE_NAMES, get_settings

if TYPE_CHECKING:
    from shared.topics import Topic


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"services.{args.service}.app")
    service = module.create_service(get_settings())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(service.serve())
    return 0


def _token(args: argparse.Namespace) -> int:
    from services.cli.token import printed, token_for

    return printed("token", lambda: token_for(get_settings(), args.hospital, args.scope))


def _link(args: argparse.Namespace) -> int:
    from services.cli.token import link_for, printed

    return printed("link", lambda: link_for(get_settings(), args.report_id, args.hospital))


def _publish(args: argparse.Namespace) -> int:
    from services.cli.publish import publish_files

    return asyncio.run(
        publish_files(args.files, args.hospital, args.format, get_settings(), as_hospital=args.as_hospital)
    )


def _tail(args: argparse.Namespace) -> int:
    from services.cli.tail import tail

    return asyncio.run(tail(args.topic, get_settings(), args.from_beginning, args.max, args.timeout))


def _replay(args: argparse.Namespace) -> int:
    from services.cli.replay import replay

    return asyncio.run(
        replay(
            get_settings(),
            args.service,
            args.reason,
            args.since,
            args.dry_run,
            args.timeout,
            hospital=args.hospital,
            topic=args.topic,
        )
    )


def _simulate(args: argparse.Namespace) -> int:
    from services.cli.simulate import simulate

    return asyncio.run(simulate(get_settings(), args.per_hospital, args.timeout))


def _quality(args: argparse.Namespace) -> int:
    from services.cli.quality import quality

    return asyncio.run(quality(get_settings(), args.task, args.timeout))


def _contract_topic(name: str) -> Topic:
    from shared.topics import topic_from_name

    try:
        return topic_from_name(name, get_settings().topic_prefix)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aimass", description="AI Mass: clinical events in, diagnostic results out.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run one service (or the local token issuer) in the foreground")
    run.add_argument("service", choices=[*SERVICE_NAMES, "issuer"])
    run.set_defaults(func=_run)

    token = commands.add_parser("token", help="an access token from the local issuer, as a hospital's backend")
    token.add_argument("--hospital", required=True, help="the hospital whose backend client asks (deploy/hospitals)")
    token.add_argument("--scope", help="e.g. system/DiagnosticReport.read (default: all the client may have)")
    token.set_defaults(func=_token)

    link = commands.add_parser("link", help="a signed link to a report, for a browser (valid for minutes)")
    link.add_argument("report_id")
    link.add_argument("--hospital", required=True, help="the patient's hospital, whose backend client asks")
    link.set_defaults(func=_link)

    publish = commands.add_parser("publish", help="publish hospital documents to ingest.raw")
    publish.add_argument("files", nargs="+", help="files or folders; '-' reads one document from stdin")
    publish.add_argument("--hospital", required=True, help="the sending hospital's id (ce_source)")
    publish.add_argument(
        "--as-hospital",
        action="store_true",
        help="publish as the hospital itself: its own input topic ingest.raw.<ID>, its credentials on a secured stack "
        "(default: as the operator, to the shared ingest.raw)",
    )
    publish.add_argument(
        "--format",
        choices=["fhir", "hl7v2", "csv", "xlsx", "json", "dicom"],
        help="document format (default: from each file's extension)",
    )
    publish.set_defaults(func=_publish)

    tail = commands.add_parser("tail", help="print the events on a topic")
    tail.add_argument(
        "topic",
        type=_contract_topic,
        help="e.g. records.clean, deadletter, predictions.fused (the prefix may be left out)",
    )
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=None, help="stop after this many events")
    tail.add_argument("--timeout", type=float, default=None, help="stop after this many idle seconds")
    tail.set_defaults(func=_tail)

    replay = commands.add_parser("replay", help="re-publish dead letters to their original topic")
    replay.add_argument("--service", help="only dead letters from this service")
    replay.add_argument("--reason", help="only dead letters whose reason contains this text")
    replay.add_argument(
        "--since", help="only dead letters after this ISO time (UTC unless it says), e.g. 2026-11-29T10:00"
    )
    replay.add_argument("--hospital", help="only dead letters from this hospital (ce_source)")
    replay.add_argument(
        "--topic", type=_contract_topic, help="only dead letters from this original topic, e.g. ingest.raw"
    )
    replay.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    replay.add_argument("--timeout", type=float, default=5.0, help="stop after this many idle seconds")
    replay.set_defaults(func=_replay)

    simulate = commands.add_parser("simulate", help="play the four-hospital scenario")
    simulate.add_argument("--per-hospital", type=int, default=None, help="records per hospital (default: all)")
    simulate.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the results")
    simulate.set_defaults(func=_simulate)

    quality = commands.add_parser("quality", help="per-hospital data quality: missing features, quality flags")
    quality.add_argument("--task", help="only this task's table (default: every task)")
    quality.add_argument("--timeout", type=float, default=10.0, help="stop after this many idle seconds")
    quality.set_defaults(func=_quality)
    from services.cli.train_cli import add_commands as add_train_commands

    add_train_commands(commands, get_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from services.cli.credentials import load_local_credentials, principal_for

    args = build_parser().parse_args(argv)
    hospital = args.hospital if getattr(args, "as_hospital", False) else None
    if load_local_credentials(principal_for(args.command, getattr(args, "service", None), hospital)):
        get_settings.cache_clear()  # parsing may have built settings (topic arguments) before the credentials came
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
