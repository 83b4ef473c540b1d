"""Print the gateway's merged OpenAPI document (what ``GET /api/openapi.json`` serves) without a server.

Run from the repository root's environment: ``.venv/bin/python web/scripts/dump_openapi.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def merged_document() -> dict[str, Any]:
    """Every service's document merged with the gateway's own routes, as the gateway does it."""
    from gateway.app import own_route_handlers
    from gateway.openapi import gateway_document, merge_openapi
    from gateway.routes import DEFAULT_ROUTES, PUBLIC_PREFIXES, RouteTable
    from libs.openapi import service_document
    from services.auth.app import create_app as create_auth
    from services.brand.app import create_app as create_brand
    from services.campaign.app import create_app as create_campaign

    documents = {
        "auth": service_document(create_auth()),
        "brand": service_document(create_brand()),
        "campaign": service_document(create_campaign()),
    }
    own = gateway_document(own_route_handlers)
    return merge_openapi(documents, own=own, routes=RouteTable(DEFAULT_ROUTES, PUBLIC_PREFIXES))


if __name__ == "__main__":
    json.dump(merged_document(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
