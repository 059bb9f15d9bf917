"""Signed links: a URL a person can open in a browser without a token in hand, for one resource, for minutes.

A client with a token asks for a link (``POST /reports/{id}/link``); the link carries its expiry, the client and the
hospital it acts for, and an HMAC-SHA-256 over those and the path under the deployment's link key
(``AIMASS_LINK_KEY``, else ``var/secrets/link.key``). Opening it acts as that client, for that page and the pages
below it (a link to ``/patients/{p}`` also opens ``/patients/{p}/questions/{task}``; one to ``/reports/{id}`` opens
``/reports/{id}/questions``): the read is audited under the client's name, and a changed path, expiry or client
breaks the signature. The report id alone, guessed or seen in a log, opens nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

from shared.auth import SCOPE_REPORTS, SCOPE_SUBMIT, Principal
from shared.http import Refused, Request

LINK_PARAMS = ("exp", "by", "for", "can", "sig")
ANSWER = "answer"
"""``can=answer``: the link also lets its holder answer the questioning page's questions (``system/Bundle.write``, as
the hospital); only a client holding that scope can have such a link made."""
MIN_LINK_SEGMENTS = 2
"""A link is made for a resource (``/reports/{id}``, ``/patients/{p}``), never for a collection above one."""


def signed_paths(path: str) -> list[str]:
    """The paths a link opening ``path`` may have been made for: the path itself, then each parent down to two
    segments (``/patients/p/questions/t`` -> ``…/questions/t``, ``…/questions``, ``/patients/p``)."""
    segments = [s for s in path.split("/") if s]
    return ["/" + "/".join(segments[:n]) for n in range(len(segments), MIN_LINK_SEGMENTS - 1, -1)]


class LinkSigner:
    def __init__(self, key: bytes, ttl_seconds: int) -> None:
        if len(key) < 16:
            raise ValueError("a link key needs at least 16 bytes")
        self._key = key
        self.ttl_seconds = ttl_seconds

    def _signature(self, path: str, expires: int, client: str, hospital: str, can: str = "") -> str:
        parts = ("aimass-link-v1", path, str(expires), client, hospital, *((can,) if can else ()))
        message = "\n".join(parts).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, path: str, principal: Principal, now: float, answer: bool = False) -> tuple[str, int]:
        """``path?exp=…&by=…&for=…[&can=answer]&sig=…`` and its expiry (epoch seconds). ``answer`` only for a
        principal that may write the hospital's documents itself."""
        if answer and not principal.allows(SCOPE_SUBMIT):
            raise ValueError(f"a link that answers questions needs a client granted {SCOPE_SUBMIT}")
        expires = int(now) + self.ttl_seconds
        hospital = principal.hospital or ""
        query = {"exp": str(expires), "by": principal.client_id, "for": hospital}
        if answer:
            query["can"] = ANSWER
        query["sig"] = self._signature(path, expires, principal.client_id, hospital, query.get("can", ""))
        return f"{path}?{urlencode(query)}", expires

    def verify(self, request: Request, now: float) -> Principal:
        """The client the link was made for, allowed the path it was made for and the paths below it; ``Refused``
        (401) otherwise. ``Principal.resource`` is the path the link was made for."""
        try:
            expires = int(request.query.get("exp", ""))
        except ValueError:
            raise Refused(401, "invalid_link", "the link has no valid expiry; ask for a new link") from None
        client, hospital = request.query.get("by", ""), request.query.get("for", "")
        given, can = request.query.get("sig", ""), request.query.get("can", "")
        made_for = next(
            (
                p
                for p in signed_paths(request.path)
                if hmac.compare_digest(self._signature(p, expires, client, hospital, can), given)
            ),
            None,
        )
        if not client or made_for is None:
            raise Refused(401, "invalid_link", "the link's signature does not match; ask for a new link")
        if expires < now:
            raise Refused(401, "expired_link", "the link has expired; ask for a new one")
        return Principal(
            client_id=client,
            hospital=hospital or None,
            scopes=frozenset({SCOPE_REPORTS, *((SCOPE_SUBMIT,) if can == ANSWER else ())}),
            token_id=request.query["sig"][:16],
            via="link",
            resource=made_for,
        )


def signed_query(request: Request) -> str:
    """The signed link's parameters of ``request`` as a query string (empty without a link): what a page opened
    from a link puts on its links to the pages below it."""
    return urlencode({name: request.query[name] for name in LINK_PARAMS if name in request.query})


def is_signed(request: Request) -> bool:
    return "sig" in request.query
