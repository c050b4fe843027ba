"""An exchange: one market's mechanism as an agent, clearing house for its trades.

Traders send ``PlaceOrder`` messages (a cohort of traders, one ``CohortOrders`` for all its
members); the exchange runs them through its mechanism (a continuous double auction, a call
market cleared as arrays, or a board of posted prices: economy/) and, at the end of every round,
settles the round's fills on the ledger and tells each trader what its orders did in one
``RoundReport`` (each cohort, in one ``CohortFills``). Settlement is ERC-20 clearing: each buyer allowed the exchange to
move its tokens (``approve``), and the exchange moves ``price * qty`` from buyer to seller for
every fill in one ``transfer_from_many`` per 256 fills, all or nothing; if a batch is refused (a
buyer spent its allowance or balance elsewhere) the fills are settled one by one and those that
cannot be are reported failed to both sides. The exchange holds no one's money: a mechanism
never moves money, and the exchange only moves what traders allowed it to, to whom they traded
with.

Time is a grid from the exchange's start, published in its service record: rounds of
``period / rounds`` seconds, ``rounds`` to a trading period. An order lives until the end of the
round it arrives in (a posting in a posted-price market, to the end of its period): the
exchange's clock decides, not the trader's, so traders on other machines cannot disagree.

The settled trades go on a tape, each under a sequence number: readers (a run's recorder, any
number of gateways) read it by their own cursor (``trades(since)``), so none takes a trade from
another, and it keeps only the latest ``tape_size`` trades, so a deployment nobody reads does not
grow with its life. A reader that fell further behind than that sees the gap.

Every order is in its sender's own name (a trader's orders settle from the trader's account, a
cohort's only from the members it registered with their signed consent); cohort orders from a
sender that registered no cohort, and round ticks from anyone but the exchange itself, are
refused and counted (issue 19, ``agents.deal_protocol.refuse``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any

import numpy as np

from agora.agents.agent import Agent, Context, on_message
from agora.agents.deal_protocol import from_self, refuse
from agora.agents.errors import NotAParty
from agora.agents.identity import Identity, keccak256
from agora.agents.messages import Message
from agora.agents.registry import ServiceRecord
from agora.agents.roles.market_protocol import CancelOrders, CohortFills, CohortOrders, PlaceOrder, RoundReport, cohort_digest
from agora.agents.roles.venues import Match, venue_for
from agora.chain import AlreadySettled, ChainError
from agora.chain.types import MAX_TRANSFER_LINES, lines_hash
from agora.economy import EconomyError, Order


class _Tick(Message):
    round: int


def read_trades(query: Callable[..., Any], address: str, since: int, page: int = 10_000) -> tuple[int, list[tuple[Any, ...]], int]:
    """Every trade the exchange at ``address`` settled after the cursor ``since``, read through
    ``query(address, method, *args)`` (a runtime's) a page at a time: the new cursor, the trades,
    and how many between were missed (the tape had dropped them before this read). An exchange
    brought back from a snapshot behind the cursor has its trades up to the cursor skipped: those
    are the ones its replay settles again, and were read once already."""
    rows: list[tuple[Any, ...]] = []
    missed = 0
    while True:
        last, got = query(address, "trades", since, page)
        if not got:
            return since, rows, missed
        missed += got[0][0] - since - 1
        rows.extend(got)
        since = got[-1][0]
        if since >= last:
            return since, rows, missed


class Exchange(Agent):
    """The market ``market`` under ``mechanism``, with rounds of ``period / rounds`` seconds."""

    role = "exchange"

    def __init__(
        self,
        name: str,
        identity: Identity,
        market: str,
        mechanism: str,
        period: float,
        rounds: int = 1,
        floor: int = 1,
        ceiling: int = 200,
        good: str = "unit",
        check_delegations: bool = True,
        max_messages_per_round: int | None = 16,
        tape_size: int = 100_000,
    ) -> None:
        super().__init__(name, identity)
        if tape_size < 1:
            raise EconomyError(f"an exchange's tape keeps at least one trade, got tape_size={tape_size}")
        # a trader (or a cohort, for all its members) needs one order message a round: a sender
        # past this many in one round is throttled, so a flood cannot crowd out the market
        self.max_messages_per_round = max_messages_per_round
        self._sent: dict[str, int] = {}
        self.throttled = 0
        self.check_delegations = check_delegations  # off only in a trusted simulation that signs nothing
        if not period > 0 or rounds < 1:
            raise EconomyError(f"an exchange needs a positive period and at least one round, got {period}, {rounds}")
        self.market, self.mechanism, self.period, self.rounds = market, mechanism, float(period), int(rounds)
        self.floor, self.ceiling, self.good = floor, ceiling, good
        self.venue = venue_for(mechanism)  # raises for a mechanism no venue is registered for
        self._members: dict[str, list[str | None]] = {}  # cohort -> its members' accounts (None: consent did not check out)
        self._cohorts_in_round: set[str] = set()
        self.t0 = 0.0
        self.round = 0
        self._next_id = 0
        self._owner: dict[int, tuple[str, int]] = {}  # exchange order id -> (trader, its cid)
        self._open: dict[str, list[int]] = {}  # trader -> cids placed and not yet reported closed
        self._pending: list[Match] = []
        self._settling: dict[str, Any] | None = None  # the round being paid (durable before any payment)
        self._last_price: int | None = None
        self._tape: deque[tuple[Any, ...]] = deque(maxlen=tape_size)  # (seq, round, t, buyer, seller, price, qty, tx)
        self._seq = 0  # the last trade's sequence number
        self.settled = self.failed = self.rejected = 0
        self.volume = 0  # units settled
        self.turnover = 0  # base units settled
        self.quotes = 0  # orders received
        self.refused_members = 0  # cohort members listed without a valid delegation
        self.refused: dict[str, int] = {}  # reason -> messages refused (agents.deal_protocol.refuse)

    @property
    def round_s(self) -> float:
        return self.period / self.rounds

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        self.t0 = ctx.now()
        terms: dict[str, str | int | float] = {
            "market": self.market,
            "mechanism": self.mechanism,
            "good": self.good,
            "floor": self.floor,
            "ceiling": self.ceiling,
            "period": self.period,
            "rounds": self.rounds,
            "t0": self.t0,
        }
        ctx.registry.register_agent(self.address, self.name, self.role)
        ctx.registry.register_service(
            ServiceRecord(address=self.address, name=self.name, capability="market", price=0, terms=terms, protocols=self.protocol_digests(), ttl=10**9),
            now=ctx.now(),
        )
        ctx.schedule(self.round_s, _Tick(round=1))

    # -- orders ----------------------------------------------------------------------------
    def _throttle(self, sender: str) -> bool:
        """Count a message from ``sender`` this round; True when it is over its allowance."""
        n = self._sent.get(sender, 0) + 1
        self._sent[sender] = n
        if self.max_messages_per_round is not None and n > self.max_messages_per_round:
            self.throttled += 1
            return True
        return False

    @on_message(PlaceOrder)
    def place(self, ctx: Context, sender: str, msg: PlaceOrder) -> None:
        if self._throttle(sender):
            return
        self.quotes += 1
        oid = self._next_id
        self._next_id += 1
        self._owner[oid] = (sender, msg.cid)
        self._open.setdefault(sender, []).append(msg.cid)
        try:
            self._pending += self.venue.place(Order(oid, sender, msg.side, msg.price, msg.qty), msg, self._owner)
        except EconomyError:
            self.rejected += 1

    @on_message(CohortOrders)
    def place_many(self, ctx: Context, sender: str, msg: CohortOrders) -> None:
        """A cohort's orders, one per member, each from the member's own account."""
        if self._throttle(sender):
            return
        if not self.venue.cohorts or not len(msg.members) == len(msg.prices) == len(msg.qtys):
            self.rejected += len(msg.members)
            return
        self._cohorts_in_round.add(sender)
        members = np.asarray(msg.members, dtype=np.int64)
        accounts = self._members.get(sender)
        if accounts is None or (len(members) and int(members.max()) >= len(accounts)):
            # whom the cohort speaks for, as it registered them (read again only while incomplete:
            # on a cluster the registration may still be on its way)
            accounts = self._verified(sender, ctx.registry.cohort_members(sender))
            if not accounts:  # nobody registered this sender as a cohort: it speaks for no one
                self.rejected += len(msg.members)
                refuse(self, ctx, sender, NotAParty(f"{sender} registered no cohort members to place orders for"))
                return
            self._members[sender] = accounts
        prices = np.asarray(msg.prices, dtype=np.int64)
        qtys = np.asarray(msg.qtys, dtype=np.int64)
        ok = (members >= 0) & (members < len(accounts)) & (prices > 0) & (qtys > 0)
        if ok.any():
            ok[ok] = [accounts[m] is not None for m in members[ok].tolist()]  # members whose consent did not check out
        self.rejected += int(len(ok) - ok.sum())
        self.venue.place_many(sender, msg.side, members[ok], prices[ok], qtys[ok], accounts)
        self.quotes += len(msg.members)

    def _verified(self, cohort: str, listed: list[tuple[str, str]]) -> list[str | None]:
        """The members' accounts, each only if its signature lets ``cohort`` trade for it
        (None where it does not: that member's orders are refused)."""
        from agora.agents.identity import recover_digest

        if not self.check_delegations:
            return [member for member, _ in listed]
        accounts: list[str | None] = []
        for member, signature in listed:
            try:
                good = recover_digest(cohort_digest(cohort, member), signature) == member.lower()
            except ValueError:
                good = False
            accounts.append(member if good else None)
            if not good:
                self.refused_members += 1
        return accounts

    @on_message(CancelOrders)
    def cancel(self, ctx: Context, sender: str, msg: CancelOrders) -> None:
        if self._throttle(sender):
            return
        self.venue.cancel(sender, set(msg.cids), self._owner)

    # -- rounds ----------------------------------------------------------------------------
    @on_message(_Tick)
    def tick(self, ctx: Context, sender: str, msg: _Tick) -> None:
        if not from_self(self, ctx, sender):
            return
        # the next round first: a crash while this one is paid must not stop the market
        ctx.schedule(max(0.0, self.t0 + (msg.round + 1) * self.round_s - ctx.now()), _Tick(round=msg.round + 1))
        if self._settling is not None:  # a round whose payment a crash (or a failing ledger) interrupted
            self._finish_round(ctx)
        self.round = msg.round
        now = self.t0 + msg.round * self.round_s
        period_end = msg.round % self.rounds == 0
        self._pending += self.venue.end_round(now, period_end, self._owner)
        matches, self._pending = self._pending, []
        self._settling = {"round": msg.round, "now": now, "period_end": period_end, "matches": matches}
        self._finish_round(ctx)
        self._sent = {}  # a new round, a new allowance

    def _finish_round(self, ctx: Context) -> None:
        """Pay the round's fills and report them. The round is journaled first (write-ahead),
        and every payment carries a settlement reference of its own: after a crash the
        exchange comes back with the round still to finish, and a payment that had landed is
        refused by the ledger as already settled, so it counts once instead of twice."""
        settling = self._settling
        assert settling is not None
        ctx.checkpoint()
        settled, failed = self._settle(ctx, settling["round"], settling["now"], settling["matches"])
        self._settling = None
        self._report(ctx, settled, failed, settling["period_end"])

    def _pay(self, ctx: Context, fills: list[Match], ref: str, rnd: int, now: float) -> bool:
        """Pay ``fills`` under ``ref``; True when they are paid. A reference found used is this
        exchange's own (the ledger keeps each settler's apart) and counts as paid only if what
        it paid is exactly these lines: after a crash the round is paid once, and a reference
        is never taken for a payment it did not make."""
        lines = [(m[0], m[1], m[2] * m[3]) for m in fills]
        try:
            receipt = ctx.wallet.transfer_from_many(lines, ref=ref)
        except AlreadySettled:
            paid = ctx.ledger.settlement(self.address, ref)
            if paid != lines_hash(*(list(col) for col in zip(*lines, strict=False))):
                ctx.log.error("settlement reference %s paid other lines (%s) than round %d's; not counted as paid", ref, paid, rnd)
                return False
            self._record(fills, rnd, now, "")  # paid before a crash: the ledger remembers what
            return True
        except ChainError:
            return False
        self._record(fills, rnd, now, receipt.tx_hash)
        return True

    def _ref(self, rnd: int, chunk: int, line: int = -1) -> str:
        return "0x" + keccak256(f"{self.address}:{self.market}:{rnd}:{chunk}:{line}".encode()).hex()

    def _settle(self, ctx: Context, rnd: int, now: float, matches: list[Match]) -> tuple[list[Match], list[Match]]:
        settled: list[Match] = []
        failed: list[Match] = []
        for n, start in enumerate(range(0, len(matches), MAX_TRANSFER_LINES)):
            chunk = matches[start : start + MAX_TRANSFER_LINES]
            if self._pay(ctx, chunk, self._ref(rnd, n), rnd, now):
                settled += chunk
                continue
            for i, m in enumerate(chunk):  # one by one: only the fills that cannot be paid fail
                (settled if self._pay(ctx, [m], self._ref(rnd, n, i), rnd, now) else failed).append(m)
        self.failed += len(failed)
        if settled:
            self._last_price = settled[-1][2]
        return settled, failed

    def _record(self, matches: list[Match], rnd: int, now: float, tx_hash: str) -> None:
        t = now - self.t0
        tape, seq = self._tape, self._seq
        for buyer, seller, price, qty, _, _ in matches:
            seq += 1
            tape.append((seq, rnd, t, buyer, seller, price, qty, tx_hash))
            self.volume += qty
            self.turnover += price * qty
        self._seq = seq
        self.settled += len(matches)

    def _report(self, ctx: Context, settled: list[Match], failed: list[Match], period_end: bool) -> None:
        fills: dict[str, list[tuple[int, str, int, int]]] = {}
        cohorts: dict[str, tuple[list[int], list[int], list[int], list[int]]] = {}
        bad: dict[str, list[int]] = {}
        for buyer, seller, price, qty, bref, sref in settled:
            for ref, other in ((bref, seller), (sref, buyer)):
                if ref[0] == "t":
                    fills.setdefault(ref[1], []).append((ref[2], other, price, qty))
                else:
                    c = cohorts.setdefault(ref[1], ([], [], [], []))
                    c[0].append(ref[2])
                    c[1].append(price)
                    c[2].append(qty)
        for _, _, _, _, bref, _ in failed:
            if bref[0] == "t":
                bad.setdefault(bref[1], []).append(bref[2])
            else:
                cohorts.setdefault(bref[1], ([], [], [], []))[3].append(bref[2])
        for cohort in self._cohorts_in_round:  # every cohort that placed orders hears back, fills or not
            cohorts.setdefault(cohort, ([], [], [], []))
        self._cohorts_in_round = set()
        for cohort in sorted(cohorts):
            members, prices, qtys, lost = cohorts[cohort]
            ctx.send(cohort, CohortFills(round=self.round, members=members, prices=prices, qtys=qtys, failed=lost))
        for trader in sorted(set(self._open) | set(fills)):
            cids = self._open.get(trader, [])
            lasting = self.venue.lives_on(trader, period_end)  # a posting lives to its period's end
            closed = [c for c in cids if c != lasting]
            keep = [c for c in cids if c not in closed]
            if keep:
                self._open[trader] = keep
            else:
                self._open.pop(trader, None)
            ctx.send(trader, RoundReport(round=self.round, fills=fills.get(trader, []), failed=bad.get(trader, []), closed=closed, last_price=self._last_price))
        live = self.venue.live_ids()  # what outlives a round (postings)
        self._owner = {oid: o for oid, o in self._owner.items() if oid in live}

    # -- for the recorder ------------------------------------------------------------------
    def trades(self, since: int = 0, limit: int = 10_000) -> tuple[int, list[tuple[Any, ...]]]:
        """The last trade's sequence number, and up to ``limit`` trades after ``since``, oldest
        first: (seq, round, seconds since start, buyer, seller, price, qty, tx hash). Reading
        moves nothing: each reader keeps its own cursor (the last seq it read). Only the latest
        ``tape_size`` trades are kept: a first row whose seq is above ``since + 1`` means the
        reader missed the ones between."""
        first = self._seq - len(self._tape) + 1  # the oldest kept trade's seq
        start = max(0, since + 1 - first)
        return self._seq, list(islice(self._tape, start, start + max(0, limit)))

    def stats(self) -> dict[str, Any]:
        return {
            "market": self.market,
            "mechanism": self.mechanism,
            "round": self.round,
            "settled": self.settled,
            "failed": self.failed,
            "rejected": self.rejected,
            "volume": self.volume,
            "turnover": self.turnover,
            "last_price": self._last_price,
            "quotes": self.quotes,
            "throttled": self.throttled,
            "unmatched_buys": self.venue.unmatched(),  # posted: buy orders no admissible posting took
        }
