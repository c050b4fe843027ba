"""The one ledger interface that every backend implements.

Reads are plain methods. Every write goes through two steps, ``prepare`` (validate against the
ledger's state, build the transaction) and ``submit`` (apply it), with the sender's signature
made in between by :meth:`Ledger.execute`: the key never leaves the agent that owns it, even
when the ledger itself runs in another process or on a remote node.

The public write methods validate their arguments here, once, before any backend sees them,
so bad input raises the same typed error everywhere and changes nothing.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

from agora.chain.errors import InvalidArgument
from agora.chain.types import (
    MAX_TRANSFER_LINES,
    BatchAccount,
    BatchSubmission,
    ChannelClaim,
    ChannelState,
    ChannelTerms,
    EscrowState,
    EscrowTerms,
    LedgerEvent,
    OpKind,
    Positions,
    Prepared,
    Receipt,
    StakeState,
    check_address,
    check_amount,
    check_id,
)


@runtime_checkable
class Signer(Protocol):
    """Anything that owns a key: it has an address and can sign an EVM transaction."""

    @property
    def address(self) -> str: ...

    def sign_transaction(self, tx: dict[str, Any]) -> bytes: ...


class SignatureNeeded(Exception):
    """Raised by :meth:`Ledger.execute` for a :class:`DeferredSigner`: the write is prepared
    (validated against the ledger's state) and waits for a signature made elsewhere."""

    def __init__(self, prepared: Prepared) -> None:
        super().__init__(f"{prepared.op} from {prepared.sender} needs its sender's signature")
        self.prepared = prepared


class DeferredSigner:
    """A sender whose key is somewhere else (an HTTP caller's wallet, behind a gateway).

    A write for it runs the same argument checks and ``prepare`` as any other, then stops with
    :class:`SignatureNeeded` carrying the transaction to sign; ``submit`` finishes it once the
    signature comes back. On a ledger that needs no signed transaction (the memory ledger) the
    write completes at once: whoever made this signer vouches that ``address`` asked for it."""

    def __init__(self, address: str) -> None:
        self.address = check_address(address, "sender")

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        raise TypeError("a DeferredSigner never signs: Ledger.execute hands its transaction back")


class Ledger(ABC):
    """Balances, transfers and escrow in integer base units of one settlement token."""

    decimals: int = 18
    symbol: str = "AGR"
    arbiter: str  # resolves disputed escrows and slashes stakes; set when the ledger is made
    treasury: str  # receives slashed stake beyond the harmed buyer's compensation

    # -- reads -------------------------------------------------------------------------
    @abstractmethod
    def balance_of(self, address: str) -> int:
        """Token balance of ``address`` in base units."""

    @abstractmethod
    def allowance(self, owner: str, spender: str) -> int:
        """What ``spender`` may still move out of ``owner``'s balance (ERC-20 allowance)."""

    @abstractmethod
    def escrow(self, escrow_id: str) -> EscrowState:
        """The escrow's recorded state; EscrowNotFound if it was never opened."""

    @abstractmethod
    def settlement(self, settler: str, ref: str) -> str | None:
        """The hash of the lines (``lines_hash``) that ``settler``'s ``transfer_from_many``
        under ``ref`` paid, or None if none landed. References are each settler's own: nobody
        else can use one up; and the hash proves *what* was paid, not only that a ref is used."""

    def ref_settled(self, settler: str, ref: str) -> bool:
        """Whether ``settler``'s ``transfer_from_many`` with this reference has landed."""
        return self.settlement(settler, ref) is not None

    @abstractmethod
    def channel(self, channel_id: str) -> ChannelState:
        """A payment channel's state; ChannelNotFound if it was never opened."""

    @abstractmethod
    def batch_account(self, buyer: str) -> BatchAccount:
        """A buyer's deposit for netted settlement, its last settled epoch and unlock time."""

    @abstractmethod
    def stake_of(self, provider: str) -> StakeState:
        """A provider's bonded stake and when it may unstake (0: not requested)."""

    @abstractmethod
    def events(self, from_block: int = 0) -> list[LedgerEvent]:
        """Escrow, channel, batch and stake events in chain order (see LedgerEvent)."""

    @abstractmethod
    def block_number(self) -> int:
        """The latest block's number (the memory ledger's: its latest operation's): a reader
        that will want what happens from now on reads ``events(from_block=block_number())``
        later, not the whole chain."""

    @abstractmethod
    def positions(self) -> Positions:
        """Open escrows, funded channels, batch deposits and stakes, sorted by id / address.
        On a chain this is rebuilt from the contracts' events, so a restarted process (or a
        second one) recovers every open position without any local state."""

    @abstractmethod
    def domains(self) -> dict[str, dict[str, Any]]:
        """EIP-712 domains that off-chain signatures bind to: "channel" (vouchers), "batch"
        (epoch authorizations), "escrow" (deal contracts and call authorizations), each naming the
        chain id and the contract, so a signature made for one chain or deployment is worthless
        on another."""

    @abstractmethod
    def total_supply(self) -> int:
        """All tokens in existence: held by accounts plus locked in escrow."""

    @abstractmethod
    def escrowed_total(self) -> int:
        """Tokens locked right now: open escrows, channel deposits and batch deposits."""

    @abstractmethod
    def accounts(self) -> list[str]:
        """Every address this ledger has seen hold or receive tokens."""

    @abstractmethod
    def receipts(self) -> list[Receipt]:
        """Every operation this ledger carried out, oldest first (gas, hashes, senders)."""

    @abstractmethod
    def now(self) -> int:
        """Ledger time in unix seconds (the latest block's timestamp on a chain)."""

    # -- operator actions (set-up and time) --------------------------------------------
    @abstractmethod
    def sync_time(self, timestamp: int) -> int:
        """Move ledger time forward to ``timestamp`` if it is behind (never backward).

        Runtimes call this so chain time follows their clock (virtual in simulation, wall in
        deployment) and a deadline means the same to agents and to the escrow."""

    def advance_time(self, seconds: int) -> int:
        """Move ledger time forward by ``seconds`` (tests travel in time, never sleep)."""
        return self.sync_time(self.now() + max(0, int(seconds)))

    @abstractmethod
    def _mint(self, to: str, amount: int) -> Receipt:
        """Create tokens for ``to`` (the operator's set-up step; counted in total_supply)."""

    @abstractmethod
    def fund_gas(self, address: str) -> Receipt | None:
        """Give ``address`` native coin for gas where the backend needs it."""

    # -- the two write steps -----------------------------------------------------------
    @abstractmethod
    def prepare(self, sender: str, op: OpKind, args: dict[str, Any]) -> Prepared:
        """Check ``op`` against current state and build what the sender must authorize."""

    @abstractmethod
    def submit(self, prepared: Prepared, signed: bytes | None) -> Receipt:
        """Apply a prepared operation, with the sender's signed transaction if it has one."""

    # -- public API ----------------------------------------------------------------------
    def execute(self, by: Signer, op: OpKind, args: dict[str, Any]) -> Receipt:
        prepared = self.prepare(by.address, op, args)
        if isinstance(by, DeferredSigner) and prepared.tx is not None:
            raise SignatureNeeded(prepared)
        signed = by.sign_transaction(prepared.tx) if prepared.tx is not None else None
        return self.submit(prepared, signed)

    def mint(self, to: str, amount: int) -> Receipt:
        return self._mint(check_address(to, "to"), check_amount(amount))

    def open_account(self, by: Signer) -> Receipt:
        """Make ``by`` ready to trade: gas where needed, and the escrow allowed to pull the
        amounts it locks (only ever from the caller of ``open_escrow``)."""
        self.fund_gas(by.address)
        return self.execute(by, "open_account", {})

    def transfer(self, by: Signer, to: str, amount: int) -> Receipt:
        args = {"to": check_address(to, "to"), "amount": check_amount(amount)}
        return self.execute(by, "transfer", args)

    def approve(self, by: Signer, spender: str, amount: int) -> Receipt:
        """Let ``spender`` (an exchange) move up to ``amount`` of ``by``'s tokens; replaces
        any earlier allowance, as ERC-20's approve does."""
        return self.execute(by, "approve", {"spender": check_address(spender, "spender"), "amount": check_amount(amount)})

    def transfer_from_many(self, by: Signer, transfers: list[tuple[str, str, int]], ref: str | None = None) -> Receipt:
        """Move each ``(from, to, amount)`` in order, within what each ``from`` allowed ``by``:
        one operation, all or nothing (how an exchange settles a step's trades). At most
        MAX_TRANSFER_LINES lines; a caller with more makes several operations. A ``ref``
        (32 bytes, 0x-hex) settles once for ``by``: asked again it is refused (AlreadySettled),
        and ``settlement(by, ref)`` gives the hash of the lines it paid (an exchange recovering
        from a crash checks it is the round it meant)."""
        if not transfers or len(transfers) > MAX_TRANSFER_LINES:
            raise InvalidArgument(f"transfer_from_many takes 1 to {MAX_TRANSFER_LINES} lines, got {len(transfers)}")
        froms, tos, amounts = [], [], []
        for i, line in enumerate(transfers):
            if not isinstance(line, (tuple, list)) or len(line) != 3:
                raise InvalidArgument(f"transfers[{i}] must be (from, to, amount), got {line!r}")
            froms.append(check_address(line[0], f"transfers[{i}].from"))
            tos.append(check_address(line[1], f"transfers[{i}].to"))
            amounts.append(check_amount(line[2], f"transfers[{i}].amount"))
        return self.execute(by, "transfer_from_many", {"froms": froms, "tos": tos, "amounts": amounts, "ref": check_ref(ref)})

    def open_escrow(self, by: Signer, terms: EscrowTerms) -> Receipt:
        """Lock ``terms.amount`` of the buyer's tokens until release or refund."""
        return self.execute(by, "open_escrow", terms.model_dump())

    def release(self, by: Signer, escrow_id: str, amount: int) -> Receipt:
        """Pay ``amount`` (at most the lock) split among the payees; the rest goes back."""
        args = {"escrow_id": check_id(escrow_id), "amount": check_amount(amount)}
        return self.execute(by, "release", args)

    def release_items(self, by: Signer, escrow_id: str, amounts: list[int]) -> Receipt:
        """Pay each payee its own amount (a metered bill, tasks.metering), each at most its line
        of the lock as ``split`` gives it; the rest goes back to the buyer."""
        if not isinstance(amounts, list) or not amounts:
            raise InvalidArgument(f"amounts must be a non-empty list, got {amounts!r}")
        args = {"escrow_id": check_id(escrow_id), "amounts": [check_amount(a) for a in amounts]}
        return self.execute(by, "release_items", args)

    def refund(self, by: Signer, escrow_id: str) -> Receipt:
        """Return the whole lock to the buyer."""
        return self.execute(by, "refund", {"escrow_id": check_id(escrow_id)})

    def draw(self, by: Signer, escrow_id: str, line: int) -> Receipt:
        """The provider (payee 0) pays line ``line`` (> 0) its whole share now, at use: a data
        owner's fee when its vault runs the job. No later release, refund or ruling takes it back."""
        if isinstance(line, bool) or not isinstance(line, int) or line < 1:
            raise InvalidArgument(f"line must be an integer of at least 1 (line 0 is the provider's own), got {line!r}")
        return self.execute(by, "draw", {"escrow_id": check_id(escrow_id), "line": line})

    def dispute(self, by: Signer, escrow_id: str) -> Receipt:
        """Buyer or provider freezes an open escrow for the arbiter's ruling."""
        return self.execute(by, "dispute", {"escrow_id": check_id(escrow_id)})

    def resolve(self, by: Signer, escrow_id: str, amount: int) -> Receipt:
        """The arbiter's ruling on a disputed escrow: pay ``amount`` split, return the rest."""
        return self.execute(by, "resolve", {"escrow_id": check_id(escrow_id), "amount": check_amount(amount)})

    def hold(self, by: Signer, escrow_id: str) -> Receipt:
        """The arbiter takes a dispute up (it found the claim's contract signed by the
        provider): until it rules, the provider's stake may not leave. A dispute alone does not
        hold it (anyone may open and dispute an escrow naming any provider)."""
        return self.execute(by, "hold", {"escrow_id": check_id(escrow_id)})

    # -- stakes and slashing ---------------------------------------------------------------
    def stake(self, by: Signer, amount: int) -> Receipt:
        return self.execute(by, "stake", {"amount": check_amount(amount)})

    def request_unstake(self, by: Signer, amount: int) -> Receipt:
        """Ask to unstake ``amount`` once the unbonding delay has passed from now (each request
        replaces the last and re-arms the delay); nothing leaves while a dispute is open."""
        return self.execute(by, "request_unstake", {"amount": check_amount(amount)})

    def unstake(self, by: Signer, amount: int) -> Receipt:
        return self.execute(by, "unstake", {"amount": check_amount(amount)})

    def slash(self, by: Signer, provider: str, amount: int, buyer: str, compensation: int) -> Receipt:
        """The arbiter takes ``amount`` of the provider's stake: ``compensation`` to the buyer,
        the rest to the treasury. Nothing is burnt."""
        args = {
            "provider": check_address(provider, "provider"),
            "amount": check_amount(amount),
            "buyer": check_address(buyer, "buyer"),
            "compensation": check_amount(compensation, "compensation"),
        }
        return self.execute(by, "slash", args)

    # -- pay-per-call channels -----------------------------------------------------------
    def open_channel(self, by: Signer, terms: ChannelTerms) -> Receipt:
        return self.execute(by, "open_channel", terms.model_dump())

    def top_up_channel(self, by: Signer, channel_id: str, amount: int) -> Receipt:
        args = {"channel_id": check_id(channel_id, "channel_id"), "amount": check_amount(amount)}
        return self.execute(by, "top_up_channel", args)

    def extend_channel(self, by: Signer, channel_id: str, expiration: int) -> Receipt:
        args = {"channel_id": check_id(channel_id, "channel_id"), "expiration": check_amount(expiration, "expiration")}
        return self.execute(by, "extend_channel", args)

    def claim_channels(self, by: Signer, claims: list[ChannelClaim]) -> Receipt:
        """Redeem vouchers on several channels (all paying ``by``) in one operation."""
        return self.execute(by, "claim_channels", {"claims": [c.model_dump() for c in claims]})

    def reclaim_channel(self, by: Signer, channel_id: str) -> Receipt:
        return self.execute(by, "reclaim_channel", {"channel_id": check_id(channel_id, "channel_id")})

    # -- netted batch settlement -----------------------------------------------------------
    def deposit(self, by: Signer, amount: int) -> Receipt:
        return self.execute(by, "deposit", {"amount": check_amount(amount)})

    def request_withdrawal(self, by: Signer, amount: int) -> Receipt:
        """Ask to withdraw ``amount`` of the batch deposit once the withdraw delay has passed
        from now (each request replaces the last and re-arms the delay), time in which every
        payee holding a signed authorization can settle it."""
        return self.execute(by, "request_withdrawal", {"amount": check_amount(amount)})

    def withdraw(self, by: Signer, amount: int) -> Receipt:
        return self.execute(by, "withdraw", {"amount": check_amount(amount)})

    def settle_batch(self, by: Signer, batch: BatchSubmission) -> Receipt:
        """Submit one epoch; anyone may, since only what each buyer signed is paid."""
        if sum(batch.counts) != len(batch.lines) or not len(batch.buyers) == len(batch.counts) == len(batch.signatures):
            raise InvalidArgument("batch: bad lines: counts, buyers and signatures do not match the lines")
        for i, payee in enumerate(batch.payees):
            check_address(payee, f"payees[{i}]")
        if any(line >> 240 >= len(batch.payees) for line in batch.lines):
            raise InvalidArgument("batch: bad lines: a line names a payee index out of range")
        return self.execute(by, "settle_batch", batch.model_dump())

    def gas_by_sender(self) -> dict[str, int]:
        """Gas each address spent, in the chain's native coin's gas units (0 on memory):
        reported per agent and apart from the token, which gas never touches."""
        spent: dict[str, int] = {}
        for r in self.receipts():
            spent[r.sender] = spent.get(r.sender, 0) + r.gas_used
        return spent

    def is_conserved(self) -> bool:
        """True when every token is accounted for: balances plus escrow equal the supply."""
        held = sum(self.balance_of(a) for a in self.accounts())
        return held + self.escrowed_total() == self.total_supply()


class OneWriteAtATimePerSender(Ledger):
    """For a ledger whose writes reach a node that numbers each sender's transactions from its
    pending count (the EVM ledger; the Ray-hosted proxy of any ledger): one sender's prepare,
    sign and submit run one at a time, so concurrent callers never draw the same nonce, while
    different senders go side by side. Subclass it in place of :class:`Ledger`."""

    def execute(self, by: Signer, op: OpKind, args: dict[str, Any]) -> Receipt:
        locks = self.__dict__.setdefault("_sender_locks", {})  # dict.setdefault is atomic
        with locks.setdefault(by.address, threading.Lock()):
            return super().execute(by, op, args)


class LedgerReader:
    """The read-only face of a ledger that agents get: balances, escrows, time. Writes go
    through a wallet (which signs); minting and moving time stay with the operator."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.arbiter = ledger.arbiter  # who rules on disputes: agents check rulings come from it

    def balance_of(self, address: str) -> int:
        return self._ledger.balance_of(address)

    def allowance(self, owner: str, spender: str) -> int:
        return self._ledger.allowance(owner, spender)

    def settlement(self, settler: str, ref: str) -> str | None:
        return self._ledger.settlement(settler, ref)

    def escrow(self, escrow_id: str) -> EscrowState:
        return self._ledger.escrow(escrow_id)

    def total_supply(self) -> int:
        return self._ledger.total_supply()

    def now(self) -> int:
        return self._ledger.now()

    def channel(self, channel_id: str) -> ChannelState:
        return self._ledger.channel(channel_id)

    def batch_account(self, buyer: str) -> BatchAccount:
        return self._ledger.batch_account(buyer)

    def domains(self) -> dict[str, dict[str, Any]]:
        return self._ledger.domains()

    def stake_of(self, provider: str) -> StakeState:
        return self._ledger.stake_of(provider)

    def block_number(self) -> int:
        return self._ledger.block_number()

    def events(self, from_block: int) -> list[LedgerEvent]:
        """Events from ``from_block`` on (no default: an agent reads what came after a block it
        noted, never the whole chain from inside a handler)."""
        return self._ledger.events(from_block)

    def released(self, escrow_id: str, from_block: int) -> int | None:
        """What escrow ``escrow_id``'s release paid out in all (its Released event, looked for
        from ``from_block`` on: a block noted while it was still open); None if none is there."""
        wanted = escrow_id.lower()
        return next((int(e.args["paid"]) for e in self.events(from_block) if e.kind == "Released" and str(e.args.get("deal_id", "")).lower() == wanted), None)


NO_REF = "0x" + "00" * 32


def check_ref(ref: str | None) -> str:
    """A settlement reference as the contracts take it: 32 bytes as 0x-hex (None: no reference)."""
    if ref is None:
        return NO_REF
    if not isinstance(ref, str) or len(ref) != 66 or not ref.startswith("0x"):
        raise InvalidArgument(f"ref must be 32 bytes as 0x-hex, got {ref!r}")
    try:
        bytes.fromhex(ref[2:])
    except ValueError:
        raise InvalidArgument(f"ref must be 32 bytes as 0x-hex, got {ref!r}") from None
    return ref.lower()
