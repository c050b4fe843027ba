"""Markets and deals: mechanisms emit awards and fills, contracts record what was agreed, the
lifecycle settles it through the ledger, and reputation remembers how it went."""

from __future__ import annotations

from agora.economy.auction import Award, Bid, ReverseAuction
from agora.economy.callmarket import CallMarket
from agora.economy.contract import Contract, Payee, deal_id_for
from agora.economy.contract_net import ContractNet, NetState, Proposal
from agora.economy.errors import (
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
from agora.economy.lifecycle import Deal, DealState
from agora.economy.mechanism import Market, Mechanism
from agora.economy.metrics import (
    allocative_efficiency,
    equilibrium,
    gini,
    max_surplus,
    price_dispersion,
    smiths_alpha,
    utilization,
)
from agora.economy.orderbook import ContinuousDoubleAuction
from agora.economy.orders import BUY, SELL, Fill, Order
from agora.economy.posted import PostedBoard, PostedPrice
from agora.economy.reputation import ReputationGraph, choose
from agora.economy.sealed_bid import SealedBidAuction
from agora.economy.session import SessionResult, run_session
from agora.economy.strategies import ZIC, ZIP, ZIU, Shading, Strategy, Truthful

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
