"""Markets and deals: mechanisms emit awards, contracts record what was agreed."""

from __future__ import annotations

from economy.auction import Award, Bid, ReverseAuction
from economy.callmarket import CallMarket
from economy.contract import Contract, Payee, deal_id_for
from economy.errors import (
    BadContractSignature,
    DuplicateOrder,
    EconomyError,
    InvalidBid,
    InvalidContract,
    InvalidOrder,
    OverBudget,
)
from economy.mechanism import Market, Mechanism
from economy.metrics import allocative_efficiency, equilibrium, gini, max_surplus, price_dispersion, smiths_alpha
from economy.orderbook import ContinuousDoubleAuction
from economy.orders import BUY, SELL, Fill, Order
from economy.sealed_bid import SealedBidAuction
from economy.session import SessionResult, run_session
from economy.strategies import ZIC, ZIP, ZIU, Shading, Strategy, Truthful

__all__ = [
    "BUY",
    "SELL",
    "ZIC",
    "ZIP",
    "ZIU",
    "SessionResult",
    "Shading",
    "Strategy",
    "Truthful",
    "run_session",
    "CallMarket",
    "ContinuousDoubleAuction",
    "DuplicateOrder",
    "Fill",
    "InvalidOrder",
    "Market",
    "Order",
    "Award",
    "BadContractSignature",
    "Bid",
    "Contract",
    "EconomyError",
    "InvalidBid",
    "InvalidContract",
    "Mechanism",
    "OverBudget",
    "Payee",
    "ReverseAuction",
    "SealedBidAuction",
    "allocative_efficiency",
    "deal_id_for",
    "equilibrium",
    "gini",
    "max_surplus",
    "price_dispersion",
    "smiths_alpha",
]
