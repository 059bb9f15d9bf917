"""The hub and the sites over Flower's deployment engine: ``server`` (ServerApp) and ``client`` (ClientApp).

A SuperLink runs at the hub, one SuperNode per site; ``flwr run services/train/federated/flower`` starts the
ServerApp (that folder's pyproject.toml names these two objects and holds the run config). The SuperNode of a site
is started with ``--node-config 'site="cleveland" data="/path/of/its/rows.npz"'``: its ClientApp reads that file
and nothing else, and answers with ``site.Site`` — statistics, weights and metrics, never a row.

Flower's own ``Strategy.start`` polls every 3 s and waits for every sampled node until its timeout; the hub's
``Waiting`` (k of n, then a short grace) needs the answers as they come, so ``GridTransport`` pushes and pulls the
messages itself. Averaging is ``hub.weighted_average`` (what Flower's FedAvg and FedProx do on the server).

The output folder (run config ``output-dir``) receives ``model.onnx`` (preprocessing inside the graph) and
``summary.json`` (rounds, held-out metrics per node, what arrived).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from logging import getLogger
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from services.train.dataset import Dataset
from services.train.federated.hub import Federated, Kind, Plan, Reply, Request, Scalar, Waiting, federate
from services.train.federated.site import Site

# torch (services.train.fit, network) is imported inside the functions that train or export: Flower starts a fresh
# process for every message, and a site answering the statistics query should not wait ~5 s for it.
log = getLogger(__name__)

MESSAGE_TYPES: dict[Kind, str] = {
    "statistics": MessageType.QUERY,
    "train": MessageType.TRAIN,
    "evaluate": MessageType.EVALUATE,
}
KINDS = {message_type: kind for kind, message_type in MESSAGE_TYPES.items()}
POLL_SECONDS = 0.2


# --- a site's rows on disk (what its SuperNode is pointed at) --------------------------------------------------


def save_site(data: Dataset, path: Path) -> None:
    np.savez(
        path,
        feature_names=np.array(data.feature_names),
        record_ids=data.record_ids.astype(str),
        sites=data.sites.astype(str),
        x=data.x,
        y=data.y,
    )


def load_site(name: str, path: Path) -> Site:
    with np.load(path) as f:
        data = Dataset(
            tuple(f["feature_names"].tolist()),
            f["record_ids"].astype(object),
            f["sites"].astype(object),
            f["x"],
            f["y"],
        )
    return Site(name, data)


# --- messages ---------------------------------------------------------------------------------------------------


def _array_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(a)) for name, a in arrays.items()})


def _arrays(record: ArrayRecord | None) -> dict[str, np.ndarray]:
    return {} if record is None else {name: array.numpy() for name, array in record.items()}


def request_message(request: Request, node: int) -> Message:
    content = RecordDict(
        {
            "arrays": _array_record(request.arrays),
            "config": ConfigRecord({**request.config, "round": request.round}),
        }
    )
    return Message(content=content, dst_node_id=node, message_type=MESSAGE_TYPES[request.kind])


def request_of(message: Message) -> Request:
    config = dict(message.content.config_records["config"])
    round_ = int(config.pop("round"))
    arrays = _arrays(message.content.array_records.get("arrays"))
    return Request(KINDS[message.metadata.message_type], round_, arrays, config)


def reply_of(message: Message) -> Reply:
    content = message.content
    metrics = {k: float(v) for k, v in content.metric_records["metrics"].items()}
    return Reply(str(message.metadata.src_node_id), _arrays(content.array_records.get("arrays")), metrics)


# --- the hub's transport --------------------------------------------------------------------------------------


class GridTransport:
    """Every connected SuperNode is asked; answers are pulled as they come until ``Waiting`` says enough."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.errors: list[tuple[str, str, int, str]] = []  # (node, kind, round, reason)
        self.timings: list[tuple[str, int, float]] = []  # (kind, round, seconds the exchange took)

    def _nodes(self, waiting: Waiting) -> list[int]:
        deadline = time.monotonic() + waiting.round_timeout
        while len(nodes := list(self.grid.get_node_ids())) < waiting.min_replies and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return nodes

    def exchange(self, request: Request, waiting: Waiting) -> list[Reply]:
        started = time.monotonic()
        nodes = self._nodes(waiting)
        pending = set(self.grid.push_messages([request_message(request, node) for node in nodes]))
        replies: list[Reply] = []
        answered, kth_at = 0, None
        while pending:
            for message in self.grid.pull_messages(pending):
                pending.discard(message.metadata.reply_to_message_id)
                answered += 1
                node = str(message.metadata.src_node_id)
                if message.has_error():
                    self.errors.append((node, request.kind, request.round, message.error.reason))
                    log.warning("site %s: %s round %d failed: %s", node, request.kind, request.round, message.error)
                    continue
                replies.append(reply_of(message))
                if kth_at is None and len(replies) >= waiting.min_replies:
                    kth_at = time.monotonic() - started
            if waiting.done(time.monotonic() - started, len(nodes) - (answered - len(replies)), len(replies), kth_at):
                break
            time.sleep(POLL_SECONDS)
        self.timings.append((request.kind, request.round, round(time.monotonic() - started, 2)))
        return replies


# --- the apps -------------------------------------------------------------------------------------------------

server = ServerApp()
client = ClientApp()


def plan_of(config: Mapping[str, Scalar]) -> Plan:
    return Plan(
        rounds=int(config["rounds"]),
        min_sites=int(config["min-sites"]),
        round_timeout=float(config["round-timeout"]),
        grace_seconds=float(config["grace-seconds"]),
        local_epochs=int(config["local-epochs"]),
        proximal_mu=float(config["proximal-mu"]),
        final_evaluation=bool(config["final-evaluation"]),
    )


def write_outcome(directory: Path, config: Mapping[str, Scalar], fed: Federated, transport: GridTransport) -> None:
    from services.train.federated.local_fit import scorer_of, trial_config
    from services.train.onnx_export import export_onnx

    directory.mkdir(parents=True, exist_ok=True)
    scorer = scorer_of(trial_config(config), fed.preprocessing, fed.weights)
    (directory / "model.onnx").write_bytes(export_onnx(scorer, len(fed.preprocessing.fill)))
    np.savez(directory / "weights.npz", **fed.weights)
    summary = {
        "config": dict(config),
        "positive_weight": fed.positive_weight,
        "rounds": [asdict(r) for r in fed.rounds],
        "final": fed.final,
        "received": [asdict(r) for r in fed.received],
        "errors": transport.errors,
        "timings": transport.timings,
    }
    (directory / "summary.json").write_text(json.dumps(summary, indent=1))


@server.main()
def main(grid: Grid, context: Context) -> None:
    from services.train.federated.local_fit import initial_weights, model_config, trial_config

    config = dict(context.run_config)
    trial, seed = trial_config(config), int(config["seed"])
    transport = GridTransport(grid)
    fed = federate(
        transport,
        plan_of(config),
        lambda n_inputs: initial_weights(trial, n_inputs, seed),
        {**model_config(trial, seed, float(config["test-fraction"])), "optimizer": str(config["optimizer"])},
    )
    write_outcome(Path(str(config["output-dir"])), config, fed, transport)


def _answer(message: Message, context: Context) -> Message:
    site = load_site(str(context.node_config["site"]), Path(str(context.node_config["data"])))
    arrays, metrics = site.answer(request_of(message))
    return Message(RecordDict({"arrays": _array_record(arrays), "metrics": MetricRecord(metrics)}), reply_to=message)


@client.query()
def statistics(message: Message, context: Context) -> Message:
    return _answer(message, context)


@client.train()
def train(message: Message, context: Context) -> Message:
    return _answer(message, context)


@client.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    return _answer(message, context)
