"""The gateway: the market reached from anywhere over HTTP, paid per call.

An agent with an HTTP face (``agora gateway``): callers with only an HTTP client and an
Ethereum key discover services, have their own signed ledger writes relayed, pay model calls
with channel vouchers, and follow their jobs; a market explorer page shows services, trades, a
live price chart and jobs' journeys. See app.py for the API, auth.py for request signing,
relay.py for the gateway agent, market.py for the markets it fronts, client.py for a client.
"""

from agora.gateway.app import create_app
from agora.gateway.auth import RateLimiter, Verifier, request_domain, request_typed_data, sign_request
from agora.gateway.client import GatewayClient, GatewayHTTPError, embeddings
from agora.gateway.errors import Conflict, Forbidden, GatewayError, Invalid, Mismatch, NotFound, PaymentRefused, RateLimited, Unauthorized, Unavailable
from agora.gateway.market import JoinedMarket, MarketFront
from agora.gateway.relay import GatewayAgent, GatewayJob

__all__ = [
    "Conflict",
    "Forbidden",
    "GatewayAgent",
    "GatewayClient",
    "GatewayError",
    "GatewayHTTPError",
    "GatewayJob",
    "Invalid",
    "JoinedMarket",
    "MarketFront",
    "Mismatch",
    "NotFound",
    "PaymentRefused",
    "RateLimited",
    "RateLimiter",
    "Unauthorized",
    "Unavailable",
    "Verifier",
    "create_app",
    "embeddings",
    "request_domain",
    "request_typed_data",
    "sign_request",
]
