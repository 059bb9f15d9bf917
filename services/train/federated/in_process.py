"""The sites as objects in this process: the hub's transport for measurements and tests (no network)."""

from __future__ import annotations

from collections.abc import Mapping

from services.train.federated.hub import Reply, Request, Waiting
from services.train.federated.site import Site


class InProcessTransport:
    """Asks every site in turn; a site that raises is left out of the exchange, as Flower leaves out an error."""

    def __init__(self, sites: Mapping[str, Site]) -> None:
        self.sites = dict(sites)
        self.failures: list[tuple[str, str, int, str]] = []  # (node, kind, round, error)

    def exchange(self, request: Request, waiting: Waiting) -> list[Reply]:
        replies = []
        for node, site in self.sites.items():
            try:
                arrays, metrics = site.answer(request)
            except Exception as error:  # a site's failure is its own: the round goes on without it
                self.failures.append((node, request.kind, request.round, repr(error)))
                continue
            replies.append(Reply(node, arrays, metrics))
        return replies
