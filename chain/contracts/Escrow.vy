# pragma version ~=0.4.3
"""
@title Agora escrow
@notice Locks a buyer's maximum price for one contract id, then either releases an actual
        cost split among the payees (the rest back to the buyer) or refunds it all.
        A contract id settles exactly once.
@dev Split rule, shared with the memory ledger: payee i>0 gets amount * bps[i] // 10000,
     payee 0 gets amount minus the others, so the remainder of integer division goes to
     the first payee (the compute provider in an Agora deal) and nothing is lost.
     Who may act: release -- buyer or the deal's arbiter; refund -- payee 0 or the deal's
     arbiter at any time, the buyer once the deadline has passed; dispute -- buyer or payee 0
     while open. A disputed escrow is frozen until the resolver (set at deployment) pays
     what it finds owed and returns the rest.
     An escrow id's first 20 bytes are its opener's address: ids are predictable (a deal's
     id derives from its buyer and job), and without this anyone could open 1 wei under a
     buyer's next id and make that deal unfundable forever. A dispute the resolver has taken
     up (``hold``: it found the claim's contract signed by the provider) counts against the
     provider (payee 0) until it is resolved, so the staking contract keeps a bond under
     dispute from leaving; a dispute alone does not, or anyone could open a 1-wei escrow naming
     a provider, dispute it, and freeze that provider's bond for good.
     A line may be paid at use (``draw``): the provider draws a data owner's line in full when the
     owner's vault runs the job, and no later release, refund or ruling takes it back -- the
     buyer chooses its release amounts and a provider may refund, so a fee paid only at
     settlement could be withheld from the owner whose data was used. Only the lines the buyer
     granted at opening (``_drawable``, a bit per line) may be drawn, never the provider's own:
     otherwise a provider could pay any payee it colludes with (a model owner's royalty line)
     and refund the rest.
"""
from ethereum.ercs import IERC20

MAX_PAYEES: constant(uint256) = 8
BPS: constant(uint256) = 10000

OPEN: constant(uint8) = 1
RELEASED: constant(uint8) = 2
REFUNDED: constant(uint8) = 3
DISPUTED: constant(uint8) = 4

struct Deal:
    buyer: address
    arbiter: address
    amount: uint256
    deadline: uint256
    state: uint8

event Opened:
    deal_id: indexed(bytes32)
    buyer: indexed(address)
    amount: uint256
    deadline: uint256

event Released:
    deal_id: indexed(bytes32)
    paid: uint256
    returned: uint256

event Refunded:
    deal_id: indexed(bytes32)
    amount: uint256

event Disputed:
    deal_id: indexed(bytes32)
    by: indexed(address)

event Drawn:
    deal_id: indexed(bytes32)
    payee: indexed(address)
    amount: uint256

token: public(IERC20)
resolver: public(address)
deals: public(HashMap[bytes32, Deal])
open_disputes: public(HashMap[address, uint256])  # provider (payee 0) -> disputes the resolver holds
held: public(HashMap[bytes32, bool])  # disputes the resolver took up
drawable: public(HashMap[bytes32, uint256])  # a bit per line the buyer lets be paid at use
payees: HashMap[bytes32, DynArray[address, MAX_PAYEES]]
shares: HashMap[bytes32, DynArray[uint256, MAX_PAYEES]]
drawn: public(HashMap[bytes32, HashMap[uint256, uint256]])  # id -> line -> paid at use
drawn_total: public(HashMap[bytes32, uint256])


@deploy
def __init__(_token: address, _resolver: address):
    self.token = IERC20(_token)
    self.resolver = _resolver


@view
@external
def payees_of(_id: bytes32) -> DynArray[address, MAX_PAYEES]:
    return self.payees[_id]


@view
@external
def shares_of(_id: bytes32) -> DynArray[uint256, MAX_PAYEES]:
    return self.shares[_id]


@external
def open(_id: bytes32, _payees: DynArray[address, MAX_PAYEES], _shares: DynArray[uint256, MAX_PAYEES], _amount: uint256, _deadline: uint256, _arbiter: address, _drawable: uint256):
    assert convert(convert(_id, uint256) >> 96, address) == msg.sender, "escrow: not opener's id"
    assert self.deals[_id].state == 0, "escrow: exists"
    assert len(_payees) > 0 and len(_payees) == len(_shares), "escrow: bad payees"
    total: uint256 = 0
    for i: uint256 in range(MAX_PAYEES):
        if i >= len(_payees):
            break
        assert _payees[i] != empty(address), "escrow: bad payees"
        total += _shares[i]
    assert total == BPS, "escrow: bad shares"
    assert _amount > 0, "escrow: bad amount"
    assert _deadline > block.timestamp, "escrow: bad deadline"
    assert _drawable & 1 == 0 and _drawable >> len(_payees) == 0, "escrow: bad drawable"
    self.deals[_id] = Deal(buyer=msg.sender, arbiter=_arbiter, amount=_amount, deadline=_deadline, state=OPEN)
    self.payees[_id] = _payees
    self.shares[_id] = _shares
    if _drawable != 0:
        self.drawable[_id] = _drawable
    assert extcall self.token.transferFrom(msg.sender, self, _amount), "escrow: transfer failed"
    log Opened(deal_id=_id, buyer=msg.sender, amount=_amount, deadline=_deadline)


@view
@internal
def _open_deal(_id: bytes32) -> Deal:
    deal: Deal = self.deals[_id]
    assert deal.state != 0, "escrow: unknown"
    assert deal.state != DISPUTED, "escrow: disputed"
    assert deal.state == OPEN, "escrow: settled"
    return deal


@internal
def _pay(_id: bytes32, deal: Deal, _paid: uint256):
    """Pay ``_paid`` split among the payees (remainder to payee 0), return the rest. A line
    drawn at use keeps its draw and gets nothing more; what it drew beyond its part of
    ``_paid`` comes out of the buyer's return first, then payee 0's remainder."""
    assert _paid <= deal.amount, "escrow: bad amount"
    self.deals[_id].state = RELEASED if _paid > 0 else REFUNDED
    payees: DynArray[address, MAX_PAYEES] = self.payees[_id]
    shares: DynArray[uint256, MAX_PAYEES] = self.shares[_id]
    any_drawn: bool = self.drawn_total[_id] > 0
    rest: uint256 = _paid
    excess: uint256 = 0
    for i: uint256 in range(1, MAX_PAYEES):
        if i >= len(payees):
            break
        part: uint256 = _paid * shares[i] // BPS
        rest -= part
        drew: uint256 = 0
        if any_drawn:
            drew = self.drawn[_id][i]
        if drew > 0:
            excess += drew - part
        elif part > 0:
            assert extcall self.token.transfer(payees[i], part), "escrow: transfer failed"
    back: uint256 = deal.amount - _paid
    if excess > back:
        rest -= excess - back
        back = 0
    else:
        back -= excess
    if rest > 0:
        assert extcall self.token.transfer(payees[0], rest), "escrow: transfer failed"
    if back > 0:
        assert extcall self.token.transfer(deal.buyer, back), "escrow: transfer failed"
    log Released(deal_id=_id, paid=deal.amount - back, returned=back)


@external
def release(_id: bytes32, _paid: uint256):
    deal: Deal = self._open_deal(_id)
    assert msg.sender == deal.buyer or msg.sender == deal.arbiter, "escrow: unauthorized"
    self._pay(_id, deal, _paid)
    self.deals[_id].state = RELEASED  # a release of 0 is still a release, not a refund


@external
def release_items(_id: bytes32, _amounts: DynArray[uint256, MAX_PAYEES]):
    """Pay each payee its own metered amount, at most its line of the lock (the split of the
    whole lock), and return the rest to the buyer: a bill paid line by line. A line drawn at
    use has been paid its whole line already; its amount here is ignored."""
    deal: Deal = self._open_deal(_id)
    assert msg.sender == deal.buyer or msg.sender == deal.arbiter, "escrow: unauthorized"
    payees: DynArray[address, MAX_PAYEES] = self.payees[_id]
    shares: DynArray[uint256, MAX_PAYEES] = self.shares[_id]
    assert len(_amounts) == len(payees), "escrow: bad lines"
    others: uint256 = 0
    for i: uint256 in range(1, MAX_PAYEES):
        if i >= len(payees):
            break
        cap: uint256 = deal.amount * shares[i] // BPS
        assert _amounts[i] <= cap, "escrow: over line"
        others += cap
    assert _amounts[0] <= deal.amount - others, "escrow: over line"
    self.deals[_id].state = RELEASED
    any_drawn: bool = self.drawn_total[_id] > 0
    paid: uint256 = 0
    for i: uint256 in range(MAX_PAYEES):
        if i >= len(payees):
            break
        drew: uint256 = 0
        if any_drawn:
            drew = self.drawn[_id][i]
        if drew > 0:  # paid in full at use
            paid += drew
        else:
            paid += _amounts[i]
            if _amounts[i] > 0:
                assert extcall self.token.transfer(payees[i], _amounts[i]), "escrow: transfer failed"
    if deal.amount > paid:
        assert extcall self.token.transfer(deal.buyer, deal.amount - paid), "escrow: transfer failed"
    log Released(deal_id=_id, paid=paid, returned=deal.amount - paid)


@external
def draw(_id: bytes32, _line: uint256):
    """Pay line ``_line`` its whole share of the lock now, at use: the provider (payee 0) draws a
    data owner's line when the owner's vault holds its job's result (the vault hands it over only
    then); the resolver draws it on a disputed escrow for its own re-run. Once a line, never
    line 0 (the provider's own pay waits for the buyer or the resolver)."""
    deal: Deal = self.deals[_id]
    payees: DynArray[address, MAX_PAYEES] = self.payees[_id]
    if not (deal.state == DISPUTED and msg.sender == self.resolver):
        deal = self._open_deal(_id)
        assert msg.sender == payees[0], "escrow: unauthorized"
    assert _line > 0 and _line < len(payees), "escrow: bad line"
    assert (self.drawable[_id] >> _line) & 1 == 1 and payees[_line] != payees[0], "escrow: not drawable"
    assert self.drawn[_id][_line] == 0, "escrow: drawn"
    cap: uint256 = deal.amount * self.shares[_id][_line] // BPS
    assert cap > 0, "escrow: empty line"
    self.drawn[_id][_line] = cap
    self.drawn_total[_id] += cap
    assert extcall self.token.transfer(payees[_line], cap), "escrow: transfer failed"
    log Drawn(deal_id=_id, payee=payees[_line], amount=cap)


@external
def dispute(_id: bytes32):
    """Freeze the escrow for the resolver: the buyer contests a delivery, or the provider
    contests a refusal to pay."""
    deal: Deal = self._open_deal(_id)
    assert msg.sender == deal.buyer or msg.sender == self.payees[_id][0], "escrow: unauthorized"
    self.deals[_id].state = DISPUTED
    log Disputed(deal_id=_id, by=msg.sender)


@external
def hold(_id: bytes32):
    """The resolver takes a dispute up: until it rules, the provider's bond may not leave.
    Holding a dispute held already changes nothing."""
    deal: Deal = self.deals[_id]
    assert deal.state != 0, "escrow: unknown"
    assert msg.sender == self.resolver, "escrow: unauthorized"
    assert deal.state == DISPUTED, "escrow: not disputed"
    if not self.held[_id]:
        self.held[_id] = True
        self.open_disputes[self.payees[_id][0]] += 1


@external
def resolve(_id: bytes32, _paid: uint256):
    """The resolver's ruling: pay ``_paid`` as a release would, return the rest to the buyer."""
    deal: Deal = self.deals[_id]
    assert deal.state != 0, "escrow: unknown"
    assert msg.sender == self.resolver, "escrow: unauthorized"
    assert deal.state == DISPUTED, "escrow: not disputed"
    if self.held[_id]:
        self.open_disputes[self.payees[_id][0]] -= 1
    self._pay(_id, deal, _paid)


@external
def refund(_id: bytes32):
    deal: Deal = self._open_deal(_id)
    allowed: bool = msg.sender == deal.arbiter or msg.sender == self.payees[_id][0]
    if msg.sender == deal.buyer:
        assert block.timestamp >= deal.deadline, "escrow: deadline not reached"
        allowed = True
    assert allowed, "escrow: unauthorized"
    self.deals[_id].state = REFUNDED
    back: uint256 = deal.amount - self.drawn_total[_id]  # a line drawn at use stays paid
    if back > 0:
        assert extcall self.token.transfer(deal.buyer, back), "escrow: transfer failed"
    log Refunded(deal_id=_id, amount=back)
