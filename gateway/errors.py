"""The gateway's own failures; problems from upstreams pass through untouched."""

from __future__ import annotations

from http import HTTPStatus

from libs.errors import AppError, Unavailable


class UpstreamUnavailable(Unavailable):
    """The upstream cannot be reached (refused, reset, or no connection in time)."""

    title = "Upstream unavailable"


class UpstreamTimeout(AppError):
    """The upstream accepted the request but did not answer in time."""

    status = HTTPStatus.GATEWAY_TIMEOUT
    title = "Gateway timeout"


class BadGateway(AppError):
    """The upstream answered with something that is not HTTP the gateway can forward."""

    status = HTTPStatus.BAD_GATEWAY
    title = "Bad gateway"
