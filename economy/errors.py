"""Errors of the economy package.

EconomyError
 ├── InvalidBid (ValueError)              a bid with a bad price or bidder
 ├── OverBudget (ValueError)              a bid above the buyer's maximum
 ├── InvalidOrder (ValueError)            an order with a bad field, or bad market input
 │    └── DuplicateOrder                  an order id used before (ids are single-use)
 ├── ProtocolViolation (RuntimeError)     a message the Contract Net does not allow now
 ├── IllegalTransition (RuntimeError)     a contract lifecycle step not allowed from its state
 │    └── DeadlinePassed                  a step that came after the contract's deadline
 ├── InvalidContract (ValueError)         contract terms that do not add up
 └── BadContractSignature (PermissionError)  a signature not made by the named party
"""

from __future__ import annotations


class EconomyError(Exception):
    """Root of every error raised by the economy package."""


class InvalidBid(EconomyError, ValueError):
    """A bid failed validation; the message names the field."""


class OverBudget(EconomyError, ValueError):
    """A bid asks more than the buyer will pay."""


class InvalidOrder(EconomyError, ValueError):
    """An order (or other market input) failed validation; the message names the field."""


class DuplicateOrder(InvalidOrder):
    """An order id that was used before: ids are single-use, so a replayed order cannot trade twice."""


class ProtocolViolation(EconomyError, RuntimeError):
    """A Contract Net message the conversation's state does not allow (names who and why)."""


class IllegalTransition(EconomyError, RuntimeError):
    """A contract lifecycle step that is not allowed from the contract's current state."""


class DeadlinePassed(IllegalTransition):
    """A step (funding, delivery) that came after the contract's deadline."""


class InvalidContract(EconomyError, ValueError):
    """Contract terms failed validation."""


class BadContractSignature(EconomyError, PermissionError):
    """A contract signature that was not made by the party it claims."""
