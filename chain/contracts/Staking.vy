# pragma version ~=0.4.3
"""
@title Agora provider stakes
@notice Providers stake tokens (token.transferAndCall: one transaction) as a bond for their
        work. The arbiter, set at deployment, slashes a stake after a dispute: the harmed
        buyer gets its compensation and any rest goes to the treasury, also set at deployment,
        so slashed tokens are never destroyed or stranded. Unstaking waits out a delay, so a
        provider cannot pull its bond from under a pending dispute.
"""
from ethereum.ercs import IERC20

event Staked:
    provider: indexed(address)
    amount: uint256

event Unstaked:
    provider: indexed(address)
    amount: uint256

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


@deploy
def __init__(_token: address, _arbiter: address, _treasury: address, _unbond_delay: uint256):
    assert _arbiter != empty(address) and _treasury != empty(address), "stake: bad address"
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
def request_unstake():
    self.unlock_at[msg.sender] = block.timestamp + self.unbond_delay


@external
def unstake(_amount: uint256):
    assert self.unlock_at[msg.sender] != 0 and block.timestamp >= self.unlock_at[msg.sender], "stake: locked"
    assert _amount <= self.stakes[msg.sender], "stake: insufficient stake"
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
