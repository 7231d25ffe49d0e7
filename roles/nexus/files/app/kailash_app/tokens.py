"""JWTs (HS256, NEXUS_JWT_SECRET) accepted by the API, the CLI and the websocket service.

Tokens are signed with the current secret only. After a rotation of the secret
(playbooks/rotate_secrets.yml) the previous one stays accepted for verification until its
grace period ends (``config.jwt_previous_secrets()``), so tokens issued before the rotation
keep working: ``verify`` tries it, and ``AcceptPreviousSecrets`` lets Nexus's own JWT check
(one secret) accept such a token on the API.
"""

from __future__ import annotations

import time

import jwt

from kailash_app import config


def issue(sub: str = "kailash-user", ttl: int = 3600, secret: str | None = None) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "nbf": now, "exp": now + int(ttl)}
    return jwt.encode(claims, secret or config.jwt_secret(), algorithm="HS256")


def _decode(token: str, secret: str) -> dict:
    return jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})


def previous_secrets(previous: list[tuple[str, int]] | None = None,
                     now: float | None = None) -> list[str]:
    """The previous secrets still in their grace period (``until`` 0: no end)."""
    now = time.time() if now is None else now
    entries = config.jwt_previous_secrets() if previous is None else previous
    return [secret for secret, until in entries if until == 0 or until > now]


def verify(token: str, secret: str, previous: list[tuple[str, int]] | None = None) -> dict:
    """Decoded claims; raises jwt.InvalidTokenError on a bad/expired token.

    A token whose signature does not match ``secret`` is also tried against the previous
    secrets still in their grace period (``previous``; default: from the environment).
    """
    try:
        return _decode(token, secret)
    except jwt.InvalidSignatureError:
        for old in previous_secrets(previous):
            try:
                return _decode(token, old)
            except jwt.InvalidSignatureError:
                continue
        raise


def resign_previous(token: str, secret: str, previous: list[str]) -> str | None:
    """The same claims signed with ``secret`` when ``token`` is signed with one of the
    ``previous`` secrets; None when it is not (valid, invalid or expired: left as it is)."""
    try:
        _decode(token, secret)
        return None
    except jwt.InvalidSignatureError:
        pass
    except jwt.InvalidTokenError:
        return None
    for old in previous:
        try:
            claims = _decode(token, old)
        except jwt.InvalidTokenError:
            continue
        return jwt.encode(claims, secret, algorithm="HS256")
    return None


class AcceptPreviousSecrets:
    """ASGI middleware in front of Nexus's JWT middleware (which knows one secret): a bearer
    token signed with a previous secret still in its grace period is passed on re-signed with
    the current secret, claims unchanged. Everything else passes through untouched, so Nexus
    still decides. Without previous secrets it does nothing."""

    def __init__(self, app, secret: str | None = None,
                 previous: list[tuple[str, int]] | None = None):
        self.app = app
        self.secret = secret or config.jwt_secret()
        self.previous = config.jwt_previous_secrets() if previous is None else previous
        # tokens already seen signed with the current secret: never re-signed, whatever
        # the time (an expired one stays refused by Nexus), so the check runs once each
        self._current: set[bytes] = set()

    async def __call__(self, scope, receive, send):
        if self.previous and scope["type"] in ("http", "websocket"):
            old = previous_secrets(self.previous)
            headers = scope.get("headers") or []
            for i, (name, value) in enumerate(headers):
                if old and name == b"authorization" and value[:7].lower() == b"bearer ":
                    if value in self._current:
                        break
                    token = resign_previous(value[7:].strip().decode("latin-1"), self.secret, old)
                    if token is None and self._signed_now(value):
                        if len(self._current) >= 4096:
                            self._current.clear()
                        self._current.add(value)
                    if token:
                        headers = list(headers)
                        headers[i] = (name, b"Bearer " + token.encode("ascii"))
                        scope = dict(scope, headers=headers)
                    break
        await self.app(scope, receive, send)

    def _signed_now(self, value: bytes) -> bool:
        try:
            jwt.decode(value[7:].strip().decode("latin-1"), self.secret, algorithms=["HS256"],
                       options={"verify_exp": False, "verify_nbf": False,
                                "verify_iat": False})
        except jwt.InvalidTokenError:
            return False
        return True
