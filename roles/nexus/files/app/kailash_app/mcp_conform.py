"""MCP conformance of the app's MCP channel (kailash-mcp's WebSocket server, which
Nexus starts on ``$NEXUS_MCP_PORT``).

kailash-mcp 0.6 answers ``initialize`` with booleans in ``capabilities.experimental``
(``"progressNotifications": true``, ``"websocketCompression": false``, ...), where the MCP
schema has objects.  The official SDKs validate the result and refuse it (pydantic:
"Input should be a valid dictionary"), so standard MCP clients could not connect; only
hand-written JSON-RPC worked.  ``conform_initialize`` rewrites that one result; every
other method is served by kailash-mcp unchanged.
"""

from __future__ import annotations


def conform_capabilities(capabilities: dict) -> dict:
    """``capabilities`` as the MCP schema types them: every ``experimental`` value an
    object.  A feature that is on becomes ``{}`` (advertised, no settings); one that is
    off (``false``/``null``) is left out, as absent means unsupported."""
    experimental = capabilities.get("experimental")
    if not isinstance(experimental, dict):
        return capabilities
    return dict(capabilities, experimental={
        name: value if isinstance(value, dict) else {}
        for name, value in experimental.items()
        if value is not False and value is not None
    })


def conform_initialize(app) -> None:
    """Make the MCP server of ``app`` (a ``nexus.Nexus``) answer ``initialize`` with
    schema-conformant capabilities.  Fails loudly when the pinned packages change shape,
    rather than serving MCP that standard clients refuse."""
    server = getattr(app, "_mcp_server", None)
    original = getattr(server, "_handle_initialize", None)
    if not callable(original):
        raise RuntimeError(
            "MCP: Nexus has no kailash-mcp server with _handle_initialize (kailash-nexus / "
            "kailash-mcp changed?): cannot make its initialize result MCP-conformant")

    async def handle_initialize(params, request_id, client_id=None):
        response = await original(params, request_id, client_id)
        result = response.get("result") if isinstance(response, dict) else None
        if isinstance(result, dict) and isinstance(result.get("capabilities"), dict):
            result["capabilities"] = conform_capabilities(result["capabilities"])
        return response

    server._handle_initialize = handle_initialize
