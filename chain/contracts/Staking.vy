# pragma version ~=0.4.3
"""
@title Agora provider stakes
@notice Providers stake tokens (token.transferAndCall: one transaction) as a bond for their
        work. The arbiter, set at deployment, slashes a stake after a dispute: the harmed
        buyer gets its compensation and any rest goes to the treasury, also set at deployment,
        so slashed tokens are never destroyed or stranded. Unstaking waits out a delay, so a
        provider cannot pull its bond from under a pending dispute: each request names an
        amount and (re-)arms the delay for it, only what was requested can leave, and only in
        the window of one more delay after it (an armed request never waits forever for the
        right moment), and nothing leaves while the escrow's resolver holds a dispute against
        the provider (a one-shot delay let a provider that had waited once take its
        whole bond at any later moment, a dispute pending, and the arbiter's slash reverted).
"""
from ethereum.ercs import IERC20

interface Escrow:
    def open_disputes(_provider: address) -> uint256: view

event Staked:
    provider: indexed(address)
    amount: uint256

event Unstaked:
    provider: indexed(address)
    amount: uint256

event UnstakeRequested:
    provider: indexed(address)
    amount: uint256
    unlock_at: uint256

event Slashed:
    provider: indexed(address)
    buyer: indexed(address)
    amount: uint256
    compensation: uint256

token: public(IERC20)
arbiter: public(address)
treasury: public(address)
unbond_delay: public(uint256)
stakes: public(HashMap[address, uint256])
unlock_at: public(HashMap[address, uint256])
requested: public(HashMap[address, uint256])  # what may leave once unlock_at has passed
escrow: public(Escrow)


@deploy
def __init__(_token: address, _arbiter: address, _treasury: address, _unbond_delay: uint256, _escrow: address):
    assert _arbiter != empty(address) and _treasury != empty(address), "stake: bad address"
    self.escrow = Escrow(_escrow)
    self.token = IERC20(_token)
    self.arbiter = _arbiter
    self.treasury = _treasury
    self.unbond_delay = _unbond_delay


@external
def onTokenTransfer(_sender: address, _value: uint256, _data: Bytes[64]) -> bool:
    assert msg.sender == self.token.address, "stake: unauthorized"
    assert _value > 0, "stake: bad amount"
    self.stakes[_sender] += _value
    log Staked(provider=_sender, amount=_value)
    return True


@external
def request_unstake(_amount: uint256):
    """Ask to take ``_amount`` out once the unbonding delay has passed from now. A new
    request replaces the last one and starts the delay again."""
    assert _amount > 0, "stake: bad amount"
    assert _amount <= self.stakes[msg.sender], "stake: insufficient stake"
    self.requested[msg.sender] = _amount
    self.unlock_at[msg.sender] = block.timestamp + self.unbond_delay
    log UnstakeRequested(provider=msg.sender, amount=_amount, unlock_at=block.timestamp + self.unbond_delay)


@external
def unstake(_amount: uint256):
    assert self.unlock_at[msg.sender] != 0 and block.timestamp >= self.unlock_at[msg.sender], "stake: locked"
    assert block.timestamp < self.unlock_at[msg.sender] + self.unbond_delay, "stake: request expired"
    assert _amount <= self.requested[msg.sender], "stake: over request"
    assert staticcall self.escrow.open_disputes(msg.sender) == 0, "stake: disputed"
    assert _amount <= self.stakes[msg.sender], "stake: insufficient stake"
    self.requested[msg.sender] -= _amount
    self.stakes[msg.sender] -= _amount
    assert extcall self.token.transfer(msg.sender, _amount), "stake: transfer failed"
    log Unstaked(provider=msg.sender, amount=_amount)


@external
def slash(_provider: address, _amount: uint256, _buyer: address, _compensation: uint256):
    assert msg.sender == self.arbiter, "stake: unauthorized"
    assert _amount <= self.stakes[_provider], "stake: insufficient stake"
    assert _compensation <= _amount, "stake: bad amount"
    assert _buyer != empty(address), "stake: bad address"
    self.stakes[_provider] -= _amount
    if _compensation > 0:
        assert extcall self.token.transfer(_buyer, _compensation), "stake: transfer failed"
    if _amount > _compensation:
        assert extcall self.token.transfer(self.treasury, _amount - _compensation), "stake: transfer failed"
    log Slashed(provider=_provider, buyer=_buyer, amount=_amount, compensation=_compensation)
