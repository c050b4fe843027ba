# pragma version ~=0.4.3
"""
@title Agora netted batch settlement
@notice Buyers deposit once (token.transferAndCall: one transaction, no approval). For each epoch, every buyer signs one EIP-712 Authorization over
        the hash of its payment lines (payee, amount) for that epoch; anyone may submit the
        epoch. The contract checks each buyer's signature against the lines it is given, debits
        the buyer's deposit, nets what every payee is owed across all buyers, and pays each
        payee once. Nothing is paid that a buyer did not sign; an epoch settles at most once per
        buyer, so a retry never pays twice. A buyer's part whose epoch already settled (lifted
        out of a pending batch and submitted first by anyone) is skipped, not a reason to fail
        the others' parts; a batch with nothing left to settle is refused. Epochs settle in any
        order (one per bit): a later epoch submitted first no longer kills an earlier one. So an
        epoch's authorization stays payable until it settles, as its payees are owed: a buyer
        never signs unsettled lines again under a later epoch (anyone may submit the old one).
@dev Calldata is compact: payees are listed once, and each line packs the payee's index in
     the top 16 bits with the amount below (amounts < 2**240). A buyer's account packs its
     last settled epoch (top 64 bits) with its deposit (low 192 bits) in one storage slot.
     Line hash chain: h0 = 0, h = keccak256(h ++ payee ++ amount) per line, in order.
"""
from ethereum.ercs import IERC20

MAX_BUYERS: constant(uint256) = 128
MAX_PAYEES: constant(uint256) = 256
MAX_LINES: constant(uint256) = 2048
DEPOSIT_MASK: constant(uint256) = 2**192 - 1
AMOUNT_MASK: constant(uint256) = 2**240 - 1
DOMAIN_TYPEHASH: constant(bytes32) = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
AUTH_TYPEHASH: constant(bytes32) = keccak256("Authorization(uint256 epoch,bytes32 linesHash)")

event Deposited:
    buyer: indexed(address)
    amount: uint256

event Withdrawn:
    buyer: indexed(address)
    amount: uint256

event WithdrawalRequested:
    buyer: indexed(address)
    amount: uint256
    unlock_at: uint256

event PartSkipped:
    epoch: indexed(uint256)
    buyer: indexed(address)

event EpochSettled:
    epoch: indexed(uint256)
    buyers: uint256
    lines: uint256
    total: uint256

token: public(IERC20)
accounts: HashMap[address, uint256]
settled_epochs: HashMap[address, HashMap[uint256, uint256]]  # buyer -> epoch >> 8 -> one bit per epoch
unlock_at: public(HashMap[address, uint256])
requested: public(HashMap[address, uint256])  # what may leave once unlock_at has passed
withdraw_delay: public(uint256)


@deploy
def __init__(_token: address, _withdraw_delay: uint256):
    self.token = IERC20(_token)
    self.withdraw_delay = _withdraw_delay


@view
@external
def deposit_of(_buyer: address) -> uint256:
    return self.accounts[_buyer] & DEPOSIT_MASK


@view
@external
def last_epoch(_buyer: address) -> uint256:
    """The highest epoch settled for this buyer (others below it may still be open)."""
    return self.accounts[_buyer] >> 192


@view
@external
def epoch_settled(_buyer: address, _epoch: uint256) -> bool:
    return self.settled_epochs[_buyer][_epoch >> 8] & (1 << (_epoch & 255)) != 0


@external
def onTokenTransfer(_sender: address, _value: uint256, _data: Bytes[64]) -> bool:
    """Credit a deposit; only the settlement token can call this, after moving the tokens."""
    assert msg.sender == self.token.address, "batch: unauthorized"
    assert _value > 0, "batch: bad amount"
    account: uint256 = self.accounts[_sender]
    assert (account & DEPOSIT_MASK) + _value <= DEPOSIT_MASK, "batch: bad amount"
    self.accounts[_sender] = account + _value
    log Deposited(buyer=_sender, amount=_value)
    return True


@external
def request_withdrawal(_amount: uint256):
    """Ask to take ``_amount`` of the deposit out once the withdraw delay has passed from now;
    settlement goes on meanwhile. Each request replaces the last and starts the delay again,
    so whoever holds a signed authorization sees the request (WithdrawalRequested) and has the
    whole delay to settle it: a buyer cannot sign its deposit over and take it back at once."""
    assert _amount > 0, "batch: bad amount"
    assert _amount <= self.accounts[msg.sender] & DEPOSIT_MASK, "batch: insufficient deposit"
    self.requested[msg.sender] = _amount
    self.unlock_at[msg.sender] = block.timestamp + self.withdraw_delay
    log WithdrawalRequested(buyer=msg.sender, amount=_amount, unlock_at=block.timestamp + self.withdraw_delay)


@external
def withdraw(_amount: uint256):
    account: uint256 = self.accounts[msg.sender]
    assert self.unlock_at[msg.sender] != 0 and block.timestamp >= self.unlock_at[msg.sender], "batch: locked"
    assert block.timestamp < self.unlock_at[msg.sender] + self.withdraw_delay, "batch: request expired"
    assert _amount <= self.requested[msg.sender], "batch: over request"
    assert _amount <= account & DEPOSIT_MASK, "batch: insufficient deposit"
    self.requested[msg.sender] -= _amount
    self.accounts[msg.sender] = account - _amount
    assert extcall self.token.transfer(msg.sender, _amount), "batch: transfer failed"
    log Withdrawn(buyer=msg.sender, amount=_amount)


@view
@internal
def _signer(_epoch: uint256, _lines_hash: bytes32, _sig: Bytes[65]) -> address:
    domain: bytes32 = keccak256(abi_encode(DOMAIN_TYPEHASH, keccak256("AgoraBatch"), keccak256("1"), chain.id, self))
    digest: bytes32 = keccak256(concat(b"\x19\x01", domain, keccak256(abi_encode(AUTH_TYPEHASH, _epoch, _lines_hash))))
    v: uint256 = convert(slice(_sig, 64, 1), uint256)
    return ecrecover(digest, v, extract32(_sig, 0), extract32(_sig, 32))


@external
def settle(_epoch: uint256, _buyers: DynArray[address, MAX_BUYERS], _counts: DynArray[uint256, MAX_BUYERS], _sigs: DynArray[Bytes[65], MAX_BUYERS], _payees: DynArray[address, MAX_PAYEES], _lines: DynArray[uint256, MAX_LINES]):
    assert len(_buyers) == len(_counts) and len(_buyers) == len(_sigs), "batch: bad lines"
    assert _epoch > 0 and _epoch < 2**64, "batch: bad epoch"
    owed: DynArray[uint256, MAX_PAYEES] = []
    for p: address in _payees:
        assert p != empty(address), "batch: bad lines"
        owed.append(0)
    cursor: uint256 = 0
    grand: uint256 = 0
    skipped: uint256 = 0
    word: uint256 = _epoch >> 8
    bit: uint256 = 1 << (_epoch & 255)
    for b: uint256 in range(MAX_BUYERS):
        if b >= len(_buyers):
            break
        h: bytes32 = empty(bytes32)
        total: uint256 = 0
        for k: uint256 in range(MAX_LINES):
            if k >= _counts[b]:
                break
            line: uint256 = _lines[cursor + k]
            idx: uint256 = line >> 240
            amount: uint256 = line & AMOUNT_MASK
            h = keccak256(concat(h, convert(_payees[idx], bytes32), convert(amount, bytes32)))
            owed[idx] += amount
            total += amount
        assert self._signer(_epoch, h, _sigs[b]) == _buyers[b], "batch: bad signature"
        if self.settled_epochs[_buyers[b]][word] & bit != 0:
            for k: uint256 in range(MAX_LINES):  # settled before: take its lines back out
                if k >= _counts[b]:
                    break
                line: uint256 = _lines[cursor + k]
                owed[line >> 240] -= line & AMOUNT_MASK
            skipped += 1
            log PartSkipped(epoch=_epoch, buyer=_buyers[b])
        else:
            self.settled_epochs[_buyers[b]][word] |= bit
            account: uint256 = self.accounts[_buyers[b]]
            assert account & DEPOSIT_MASK >= total, "batch: insufficient deposit"
            self.accounts[_buyers[b]] = (max(account >> 192, _epoch) << 192) | ((account & DEPOSIT_MASK) - total)
            grand += total
        cursor += _counts[b]
    assert cursor == len(_lines), "batch: bad lines"
    assert skipped < len(_buyers), "batch: settled"
    for i: uint256 in range(MAX_PAYEES):
        if i >= len(_payees):
            break
        if owed[i] > 0:
            assert extcall self.token.transfer(_payees[i], owed[i]), "batch: transfer failed"
    log EpochSettled(epoch=_epoch, buyers=len(_buyers), lines=cursor, total=grand)
