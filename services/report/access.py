"""Who may read which report (pure): a hospital's clients read their own patients' reports; a signed link opens the
one report it was made for; operators and clients acting for no hospital read none."""

from __future__ import annotations

from shared.auth import Principal
from shared.http import Refused, Request


def under(path: str, resource: str | None) -> bool:
    """Whether ``path`` is the page a link was made for or a page below it."""
    return resource is not None and (path == resource or path.startswith(resource.rstrip("/") + "/"))


def refusal(principal: Principal, hospital: str, path: str) -> str | None:
    """Why ``principal`` may not read what lies at ``path`` (a report or a list of ``hospital``'s patient); ``None``
    when it may. A signed link opens the page it was made for and the pages below it."""
    if principal.via == "link":
        if not under(path, principal.resource) or principal.hospital != hospital:
            return "this link was made for another page; ask for a link to this one"
        return None
    if principal.hospital is None:
        return "this token acts for no hospital; reports are read with a token of the patient's hospital"
    if principal.hospital != hospital:
        return "this report is about a patient of another hospital"
    return None


def authorize(request: Request, hospital: str) -> None:
    """``Refused`` (403, with ``refusal``'s reason) unless the request's principal may read ``hospital``'s page at
    the request's path."""
    assert request.principal is not None  # every route has a guard
    reason = refusal(request.principal, hospital, request.path)
    if reason is not None:
        raise Refused(403, "access_denied", reason)
