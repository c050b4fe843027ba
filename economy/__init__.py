"""Markets and deals: mechanisms emit awards, contracts record what was agreed."""

from __future__ import annotations

from economy.auction import Award, Bid, ReverseAuction
from economy.contract import Contract, Payee, deal_id_for
from economy.errors import BadContractSignature, EconomyError, InvalidBid, InvalidContract, OverBudget
from economy.mechanism import Mechanism
from economy.metrics import allocative_efficiency, equilibrium, gini, max_surplus, price_dispersion, smiths_alpha
from economy.sealed_bid import SealedBidAuction

__all__ = [
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
