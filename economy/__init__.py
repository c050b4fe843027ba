"""Markets and deals: mechanisms emit awards, contracts record what was agreed."""

from __future__ import annotations

from economy.auction import Award, Bid, ReverseAuction
from economy.contract import Contract, Payee, deal_id_for
from economy.errors import BadContractSignature, EconomyError, InvalidBid, InvalidContract, OverBudget

__all__ = [
    "Award",
    "BadContractSignature",
    "Bid",
    "Contract",
    "EconomyError",
    "InvalidBid",
    "InvalidContract",
    "OverBudget",
    "Payee",
    "ReverseAuction",
    "deal_id_for",
]
