"""The cluster token guards the dashboard, as it guards the cluster's sockets.

A browser proves it knows the token once (the login form, or a ``#token=``
fragment the page posts and then removes from the address bar); the server
answers with an HttpOnly, SameSite=Strict cookie holding the token, which
scripts cannot read and other sites cannot send.  Scrapers of ``/metrics`` may
send ``Authorization: Bearer TOKEN`` instead.  Tokens are compared in constant
time.  Without a valid token only the login page and its script are served;
everything else is a 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

COOKIE = "shoal_dashboard_token"
PUBLIC_PATHS = frozenset({"/", "/login", "/static/login.js", "/static/style.css",
                          "/favicon.ico"})


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison; an empty or missing value never matches."""
    if not given or not token:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def presented_token(cookies: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The token a request carries: its cookie, else a bearer header."""
    value = cookies.get(COOKIE)
    if value:
        return value
    header = headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip()
    return None


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS
