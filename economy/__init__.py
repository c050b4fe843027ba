"""Markets and deals: mechanisms emit awards and fills, contracts record what was agreed, the
lifecycle settles it through the ledger, and reputation remembers how it went."""

from __future__ import annotations

from economy.auction import Award, Bid, ReverseAuction
from economy.callmarket import CallMarket
from economy.contract import Contract, Payee, deal_id_for
from economy.contract_net import ContractNet, NetState, Proposal
from economy.errors import (
    BadContractSignature,
    DeadlinePassed,
    DuplicateOrder,
    EconomyError,
    IllegalTransition,
    InvalidBid,
    InvalidContract,
    InvalidOrder,
    OverBudget,
    ProtocolViolation,
)
from economy.lifecycle import Deal, DealState
from economy.mechanism import Market, Mechanism
from economy.metrics import (
    allocative_efficiency,
    equilibrium,
    gini,
    max_surplus,
    price_dispersion,
    smiths_alpha,
    utilization,
)
from economy.orderbook import ContinuousDoubleAuction
from economy.orders import BUY, SELL, Fill, Order
from economy.posted import PostedBoard, PostedPrice
from economy.reputation import ReputationGraph, choose
from economy.sealed_bid import SealedBidAuction
from economy.session import SessionResult, run_session
from economy.strategies import ZIC, ZIP, ZIU, Shading, Strategy, Truthful

__all__ = [
    "BUY",
    "SELL",
    "ZIC",
    "ZIP",
    "ZIU",
    "Award",
    "BadContractSignature",
    "Bid",
    "CallMarket",
    "ContinuousDoubleAuction",
    "Contract",
    "ContractNet",
    "Deal",
    "DealState",
    "DeadlinePassed",
    "DuplicateOrder",
    "EconomyError",
    "Fill",
    "IllegalTransition",
    "InvalidBid",
    "InvalidContract",
    "InvalidOrder",
    "Market",
    "Mechanism",
    "NetState",
    "Order",
    "OverBudget",
    "Payee",
    "PostedBoard",
    "PostedPrice",
    "Proposal",
    "ProtocolViolation",
    "ReputationGraph",
    "ReverseAuction",
    "SealedBidAuction",
    "SessionResult",
    "Shading",
    "Strategy",
    "Truthful",
    "allocative_efficiency",
    "choose",
    "deal_id_for",
    "equilibrium",
    "gini",
    "max_surplus",
    "price_dispersion",
    "run_session",
    "smiths_alpha",
    "utilization",
]
