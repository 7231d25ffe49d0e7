"""JWTs (HS256, NEXUS_JWT_SECRET) accepted by the API, the CLI and the websocket service."""

from __future__ import annotations

import time

import jwt

from kailash_app import config


def issue(sub: str = "kailash-user", ttl: int = 3600, secret: str | None = None) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "nbf": now, "exp": now + int(ttl)}
    return jwt.encode(claims, secret or config.jwt_secret(), algorithm="HS256")


def verify(token: str, secret: str) -> dict:
    """Decoded claims; raises jwt.InvalidTokenError on a bad/expired token."""
    return jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
