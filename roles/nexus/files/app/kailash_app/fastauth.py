"""Nexus's JWT check as plain ASGI on the request path that matters (issue #14).

Nexus installs ``nexus.auth.jwt.JWTMiddleware``, a Starlette ``BaseHTTPMiddleware``. That
base class runs every request through ``call_next``, which wraps each ``receive()`` in an
anyio task group; measured with py-spy under the classify load, that wrapping alone was
about a fifth of nexus-api's CPU.

``PlainJWTMiddleware`` keeps Nexus's middleware object and its ``JWTValidator`` and only
changes *how* the two common cases are passed on:

- an exempt path (``/health``, ``/readyz``, ...) goes straight to the app, as Nexus does;
- a bearer token that Nexus's own validator accepts (signature, expiry, age) goes to the
  app with the same ``request.state`` (user, token, token_payload) and the same tenant /
  actor context variables that Nexus sets.

Everything else (no token, an invalid or expired token, API keys, a configured
``on_token_validated`` hook, any unexpected error) is handed to Nexus's own middleware,
so every refusal is Nexus's own answer, byte for byte.
"""

from __future__ import annotations

import logging

log = logging.getLogger("kailash_app.fastauth")


class PlainJWTMiddleware:
    def __init__(self, app, config=None, **kwargs):
        from nexus.auth.jwt import JWTMiddleware

        self.app = app
        self.nexus = JWTMiddleware(app, config=config, **kwargs)
        self.validator = self.nexus._validator
        self.config = self.nexus.config
        self.simple = not (self.config.api_key_enabled or self.config.on_token_validated)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.validator.is_path_exempt(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        payload = self._accepted(scope) if self.simple else None
        if payload is None:
            await self.nexus(scope, receive, send)
            return
        from nexus.context import _current_actor_id, _current_tenant_id

        token, claims = payload
        state = scope.setdefault("state", {})
        state["user"] = self.validator.create_user_from_payload(claims)
        state["token"] = token
        state["token_payload"] = claims
        tenant = _current_tenant_id.set(claims.get("tenant_id"))
        actor = _current_actor_id.set(claims.get("sub"))
        try:
            await self.app(scope, receive, send)
        finally:
            _current_actor_id.reset(actor)
            _current_tenant_id.reset(tenant)

    def _accepted(self, scope) -> tuple[str, dict] | None:
        """(token, claims) when Nexus's validator accepts the bearer token; else None."""
        header = self.config.token_header.lower().encode("latin-1")
        for name, value in scope.get("headers") or []:
            if name == header:
                if value[:7] not in (b"Bearer ", b"bearer "):
                    return None
                token = value[7:].decode("latin-1")
                break
        else:
            return None
        try:
            claims = self.validator.verify_token(token)
            if self.validator.check_token_age(claims):
                return None
        except Exception:  # noqa: BLE001 - Nexus's middleware gives the refusal
            return None
        return token, claims


def install(gateway_app) -> bool:
    """Replace Nexus's JWTMiddleware in the gateway's (not yet built) middleware list."""
    from nexus.auth.jwt import JWTMiddleware
    from starlette.middleware import Middleware

    for i, m in enumerate(gateway_app.user_middleware):
        if m.cls is JWTMiddleware:
            gateway_app.user_middleware[i] = Middleware(PlainJWTMiddleware, *m.args,
                                                        **m.kwargs)
            return True
    log.warning("Nexus's JWTMiddleware not found: authentication left as Nexus set it up")
    return False
