"""Operator tooling in the gateway: rq-dashboard, the queue API and live streams, metrics.

``install`` adds the routes, state and lifespan to the gateway's own Litestar app. See
:mod:`gateway.ops.controllers` for the routes and :mod:`gateway.ops.broadcaster` for the
shared poll loop behind the streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from litestar import Litestar
from prometheus_client import CollectorRegistry

from gateway.ops.broadcaster import Broadcaster
from gateway.ops.controllers import PUBLIC_HANDLERS, ops_router
from gateway.ops.dashboard import DashboardMount, create_dashboard
from gateway.ops.metrics import MeteredProxy, OpsCollector, RequestMetrics
from gateway.ops.session import SessionCodec
from gateway.settings import GatewaySettings

__all__ = ["MeteredProxy", "ops_lifespan", "ops_route_handlers", "ops_state"]


def ops_route_handlers() -> list[Any]:
    """The operator router and the routes that authenticate on their own."""
    return [ops_router(), *PUBLIC_HANDLERS]


def ops_state(settings: GatewaySettings, proxy: MeteredProxy) -> dict[str, Any]:
    """State the operator routes read: session codec, metrics registry and collector."""
    registry = CollectorRegistry(auto_describe=True)
    proxy.metrics = RequestMetrics(registry, proxy.upstreams)
    collector = OpsCollector()
    registry.register(collector)
    return {
        "ops_sessions": SessionCodec(settings.secret_key.get_secret_value(), max_age=settings.ops_session_seconds),
        "ops_registry": registry,
        "ops_collector": collector,
    }


@asynccontextmanager
async def ops_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Start the dashboard and the shared poll loop; stop the loop on shutdown."""
    settings: GatewaySettings = app.state.settings
    app.state.ops_dashboard = DashboardMount(
        create_dashboard(settings.redis_url, disable_delete=settings.ops_dashboard_disable_delete),
        disable_delete=settings.ops_dashboard_disable_delete,
    )
    broadcaster = Broadcaster(
        redis=app.state.redis,
        database=app.state.db,
        interval=settings.ops_stream_interval,
        ledger_interval=settings.ops_ledger_interval,
        buffer=settings.ops_stream_buffer,
    )
    app.state.broadcaster = broadcaster
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(broadcaster.run)
        try:
            yield
        finally:
            tasks.cancel_scope.cancel()
