"""Issue 18's holes in the money layer, each played by the attacker it names, on every ledger
backend (memory, the embedded chain, anvil): the attack is refused with its typed error and
changes nothing, and the honest party's own step still works."""

from __future__ import annotations

import pytest

from agora.chain import (
    AlreadySettled,
    DeadlineNotReached,
    Disputed,
    EpochBuilder,
    EscrowTerms,
    InvalidAmount,
    InvalidArgument,
    Ledger,
    RequestExpired,
    SignedTxMismatch,
    Unauthorized,
)
from agora.chain.types import ChannelTerms, check_address, lines_hash
from tests.conftest import TOKEN, owned

REF = "0x" + "5e" * 32


def _open(ledger: Ledger, people: dict) -> None:
    for who in people.values():
        ledger.open_account(who)
    ledger.mint(people["buyer"].address, 100 * TOKEN)


def _held(ledger: Ledger, people: dict) -> dict[str, int]:
    return {k: ledger.balance_of(p.address) for k, p in people.items()}


def test_a_stranger_cannot_use_up_a_settlers_reference(ledger: Ledger, people: dict) -> None:
    """Hole 1: the exchange's next reference is predictable. A stranger settling a zero-value
    line under it used it up, and the exchange then read "already settled" as "paid"."""
    _open(ledger, people)
    buyer, owner, exchange, stranger = people["buyer"], people["owner"], people["provider"], people["stranger"]
    ledger.approve(buyer, exchange.address, 10 * TOKEN)
    ledger.transfer_from_many(stranger, [(stranger.address, owner.address, 0)], ref=REF)  # the squat
    assert ledger.settlement(stranger.address, REF) == lines_hash([stranger.address], [owner.address], [0])
    assert ledger.settlement(exchange.address, REF) is None  # the exchange's own reference is untouched
    ledger.transfer_from_many(exchange, [(buyer.address, owner.address, 3 * TOKEN)], ref=REF)  # and pays
    assert ledger.balance_of(owner.address) == 3 * TOKEN
    assert ledger.settlement(exchange.address, REF) == lines_hash([buyer.address], [owner.address], [3 * TOKEN])
    with pytest.raises(AlreadySettled):
        ledger.transfer_from_many(exchange, [(buyer.address, owner.address, 3 * TOKEN)], ref=REF)
    assert ledger.is_conserved()


def test_escrow_and_channel_ids_belong_to_their_opener(ledger: Ledger, people: dict) -> None:
    """Weakness 8 (and its twin, channel ids): a stranger opening 1 wei under a buyer's next
    deal id made that deal unfundable forever."""
    _open(ledger, people)
    buyer, provider, stranger = people["buyer"], people["provider"], people["stranger"]
    ledger.mint(stranger.address, TOKEN)
    victim_id = owned("buyer", "next deal")
    terms = EscrowTerms(escrow_id=victim_id, payees=[provider.address], shares_bps=[10_000], amount=1, deadline=ledger.now() + 600)
    before = _held(ledger, people)
    with pytest.raises(Unauthorized, match="not opener's id"):
        ledger.open_escrow(stranger, terms)
    channel = ChannelTerms(channel_id=owned("buyer", "next channel"), recipient=provider.address, amount=1, expiration=ledger.now() + 600)
    with pytest.raises(Unauthorized, match="not sender's id"):
        ledger.open_channel(stranger, channel)
    assert _held(ledger, people) == before and ledger.escrowed_total() == 0
    ledger.open_escrow(buyer, terms.model_copy(update={"amount": 5 * TOKEN}))  # the buyer funds its deal
    ledger.open_channel(buyer, channel)
    assert ledger.escrow(victim_id).buyer == buyer.address and ledger.is_conserved()


def test_a_bond_under_dispute_cannot_leave_and_each_request_rearms_the_delay(ledger: Ledger, people: dict) -> None:
    """Weakness 6: after one request and one wait a provider could take its whole bond at any
    later moment, a dispute pending, and the arbiter's slash reverted."""
    _open(ledger, people)
    buyer, provider, arbiter = people["buyer"], people["provider"], people["arbiter"]
    ledger.mint(provider.address, 50 * TOKEN)
    ledger.stake(provider, 40 * TOKEN)
    ledger.request_unstake(provider, 40 * TOKEN)
    ledger.advance_time(86_401)  # the wait is over ...
    deal = owned("buyer", "disputed deal")
    ledger.open_escrow(buyer, EscrowTerms(escrow_id=deal, payees=[provider.address], shares_bps=[10_000], amount=TOKEN, deadline=ledger.now() + 600))
    ledger.dispute(buyer, deal)  # ... but a dispute is open against the provider
    ledger.hold(arbiter, deal)  # and the arbiter took it up (the claim's contract is the provider's)
    ledger.hold(arbiter, deal)  # the buyer's claim and the provider's both: held once
    with pytest.raises(Disputed, match="stake: disputed"):
        ledger.unstake(provider, 40 * TOKEN)
    ledger.slash(arbiter, provider.address, 10 * TOKEN, buyer.address, 5 * TOKEN)  # the slash lands
    ledger.resolve(arbiter, deal, 0)
    ledger.unstake(provider, 10 * TOKEN)  # dispute over: what was requested may leave, in parts
    ledger.request_unstake(provider, 20 * TOKEN)  # a new request re-arms the delay
    with pytest.raises(DeadlineNotReached):
        ledger.unstake(provider, 1)
    ledger.advance_time(86_401)
    with pytest.raises(InvalidAmount, match="over request"):
        ledger.unstake(provider, 20 * TOKEN + 1)
    ledger.unstake(provider, 20 * TOKEN)
    with pytest.raises(InvalidAmount, match="over request"):
        ledger.unstake(provider, 1)  # the request is used up: asking again starts a new delay
    assert ledger.stake_of(provider.address).stake == 0 and ledger.is_conserved()


def test_a_dispute_nobody_took_up_holds_no_bond_and_a_request_expires(ledger: Ledger, people: dict) -> None:
    """Two ways around the bond rule an outside review found: a stranger opening a 1-wei escrow
    naming a provider and disputing it froze that provider's bond for good (no claim could ever
    end it); and a request, once its delay had passed, let the bond leave at any later moment."""
    _open(ledger, people)
    provider, stranger, _arbiter = people["provider"], people["stranger"], people["arbiter"]
    ledger.mint(provider.address, 50 * TOKEN)
    ledger.mint(stranger.address, TOKEN)
    ledger.stake(provider, 40 * TOKEN)
    fake = owned("stranger", "fake deal")
    ledger.open_escrow(stranger, EscrowTerms(escrow_id=fake, payees=[provider.address], shares_bps=[10_000], amount=1, deadline=ledger.now() + 10**6))
    ledger.dispute(stranger, fake)  # no contract the provider signed: the arbiter never holds it
    with pytest.raises(Unauthorized):
        ledger.hold(stranger, fake)  # only the arbiter holds
    ledger.request_unstake(provider, 40 * TOKEN)
    ledger.advance_time(86_401)
    ledger.unstake(provider, 10 * TOKEN)  # the fake dispute holds nothing
    ledger.advance_time(86_400)  # the window of one more delay is over
    with pytest.raises(RequestExpired, match="request expired"):
        ledger.unstake(provider, 10 * TOKEN)
    ledger.deposit(people["buyer"], TOKEN)
    ledger.request_withdrawal(people["buyer"], TOKEN)
    ledger.advance_time(2 * 3600)
    with pytest.raises(RequestExpired, match="request expired"):
        ledger.withdraw(people["buyer"], TOKEN)
    assert ledger.stake_of(provider.address).stake == 30 * TOKEN and ledger.is_conserved()


def test_a_payee_settles_inside_the_withdraw_delay_and_is_paid_in_full(ledger: Ledger, people: dict) -> None:
    """Weakness 7: a buyer withdrew in one step a deposit it had just signed over to a payee.
    Now a withdrawal is announced (requested, with its amount) a whole delay before it can
    happen, and a payee that settles meanwhile is paid everything it was signed."""
    _open(ledger, people)
    buyer, provider, stranger = people["buyer"], people["provider"], people["stranger"]
    ledger.deposit(buyer, 10 * TOKEN)
    ledger.request_withdrawal(buyer, 10 * TOKEN)
    ledger.advance_time(3601)
    ledger.withdraw(buyer, TOKEN)  # an old request: its amount, at most, and only after its delay
    epoch = EpochBuilder(1, ledger.domains()["batch"])
    epoch.add(buyer.address, {provider.address: 6 * TOKEN})
    batch = epoch.build(lambda _, typed: buyer.sign_typed_data(typed))
    ledger.request_withdrawal(buyer, 9 * TOKEN)  # signed away, then asked back: the delay starts again
    assert ledger.batch_account(buyer.address).requested == 9 * TOKEN
    with pytest.raises(DeadlineNotReached):
        ledger.withdraw(buyer, 9 * TOKEN)
    ledger.settle_batch(stranger, batch)  # anyone may submit what the buyer signed
    assert ledger.balance_of(provider.address) == 6 * TOKEN
    ledger.advance_time(3601)
    with pytest.raises(Exception, match="insufficient deposit"):
        ledger.withdraw(buyer, 9 * TOKEN)
    ledger.withdraw(buyer, 3 * TOKEN)
    assert ledger.batch_account(buyer.address).deposit == 0 and ledger.is_conserved()


def test_conservation_counts_holders_this_process_never_saw(ledger: Ledger, people: dict) -> None:
    """Weakness 9: a raw transfer to an address this process never dealt with made
    ``is_conserved`` false on the EVM. Here a second client of the same chain moves tokens."""
    _open(ledger, people)
    unseen = check_address("0x" + "7a" * 20)
    other = ledger
    if hasattr(ledger, "w3"):  # a second process on the same chain: a ledger found by its address book
        other = type(ledger)(ledger.w3, address_book=ledger.address_book())
    other.transfer(people["buyer"], unseen, 5)
    assert ledger.balance_of(unseen) == 5
    assert ledger.is_conserved()


def test_a_mistyped_checksum_is_refused(ledger: Ledger, people: dict) -> None:
    """An address in mixed case is an EIP-55 checksum; a wrong one is a typo, refused as web3 does."""
    _open(ledger, people)
    good = people["owner"].address
    flipped = good[:-1] + (good[-1].lower() if good[-1].isupper() else good[-1].upper())
    if flipped == good or not any(c.isalpha() for c in good[-1]):
        flipped = good[:2] + good[2:].swapcase()
    with pytest.raises(InvalidArgument, match="checksum"):
        ledger.transfer(people["buyer"], flipped, 1)
    ledger.transfer(people["buyer"], good.lower(), 1)  # all lower case carries no checksum: fine
    assert ledger.balance_of(good) == 1


def test_signed_bytes_must_be_the_prepared_transaction(ledger: Ledger, people: dict) -> None:
    """Holes 2 and 4 at the ledger: bytes that do not decode, or that are another transaction
    (another chain, target, value, nonce, signer), are refused before anything is sent."""
    if not hasattr(ledger, "w3"):
        pytest.skip("the memory ledger takes no signed transactions")
    _open(ledger, people)
    buyer, owner = people["buyer"], people["owner"]
    prepared = ledger.prepare(buyer.address, "transfer", {"to": owner.address, "amount": 5})
    before = _held(ledger, people)
    for junk in (b"\x00", b"\xc0", b"\xff" * 100, b"\x02junk"):
        with pytest.raises(SignedTxMismatch, match="signed: not a signed transaction"):
            ledger.submit(prepared, junk)
    many = ledger.prepare(buyer.address, "approve", {"spender": owner.address, "amount": 10})
    for field, change in (
        ("chain id", {"chainId": 1}),
        ("nonce", {"nonce": prepared.tx["nonce"] + 3}),
        ("value", {"value": 1}),
        ("to", {"to": owner.address}),
        ("data", {"data": many.tx["data"]}),
    ):
        with pytest.raises(SignedTxMismatch, match=field):
            ledger.submit(prepared, buyer.sign_transaction({**prepared.tx, **change}))
    with pytest.raises(SignedTxMismatch, match="signed by"):
        ledger.submit(prepared, owner.sign_transaction({**prepared.tx, "from": owner.address}))
    legacy = {k: v for k, v in prepared.tx.items() if k not in ("maxFeePerGas", "maxPriorityFeePerGas")} | {"gasPrice": prepared.tx["maxFeePerGas"]}
    with pytest.raises(SignedTxMismatch, match="maxFeePerGas"):  # the same call as another transaction type
        ledger.submit(prepared, buyer.sign_transaction(legacy))
    assert _held(ledger, people) == before
    ledger.submit(prepared, buyer.sign_transaction(prepared.tx))
    assert ledger.balance_of(owner.address) == 5


def _two_buyer_epoch(ledger: Ledger, people: dict, epoch: int):
    b = EpochBuilder(epoch, ledger.domains()["batch"])
    b.add(people["buyer"].address, {people["provider"].address: 500})
    b.add(people["arbiter"].address, {people["owner"].address: 300})
    keys = {people[k].address: people[k] for k in ("buyer", "arbiter")}
    return b.build(lambda who, typed: keys[who].sign_typed_data(typed))


def test_a_lifted_part_or_a_later_epoch_first_kills_no_other_payment(ledger: Ledger, people: dict) -> None:
    """Issue 19, item 7: one buyer's signed part lifted out of a pending batch and submitted
    first made the whole batch revert (the other payees unpaid); a later epoch submitted first
    killed an earlier one for good."""
    _open(ledger, people)
    ledger.mint(people["arbiter"].address, 10 * TOKEN)
    for name in ("buyer", "arbiter"):
        ledger.deposit(people[name], TOKEN)
    one, two = _two_buyer_epoch(ledger, people, 1), _two_buyer_epoch(ledger, people, 2)
    lifted = one.model_copy(update={"buyers": one.buyers[:1], "counts": one.counts[:1], "signatures": one.signatures[:1], "lines": one.lines[: one.counts[0]]})
    ledger.settle_batch(people["stranger"], lifted)  # the attacker submits the buyer's part alone
    ledger.settle_batch(people["stranger"], two)  # and the later epoch before the earlier one
    ledger.settle_batch(people["stranger"], one)  # the whole earlier batch still settles the rest
    assert ledger.balance_of(people["provider"].address) == 2 * 500  # the lifted part paid once, not twice
    assert ledger.balance_of(people["owner"].address) == 2 * 300
    assert [e.kind for e in ledger.events()][-2:] == ["PartSkipped", "EpochSettled"]
    with pytest.raises(AlreadySettled):
        ledger.settle_batch(people["stranger"], one)  # nothing left to settle: refused
    assert ledger.is_conserved()
