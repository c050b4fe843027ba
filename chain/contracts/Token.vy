# pragma version ~=0.4.3
"""
@title Agora settlement token
@notice A plain ERC-20 with an owner-only mint. Every Agora price, escrow and payout is
        counted in this token's base units, so conservation is checkable from totalSupply.
"""
from ethereum.ercs import IERC20

implements: IERC20


interface TokenReceiver:
    def onTokenTransfer(_sender: address, _value: uint256, _data: Bytes[64]) -> bool: nonpayable

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
minter: public(address)
settlement: public(HashMap[address, HashMap[bytes32, bytes32]])  # settler -> ref -> hash of the lines it paid


@deploy
def __init__(_name: String[32], _symbol: String[8], _decimals: uint8):
    self.name = _name
    self.symbol = _symbol
    self.decimals = _decimals
    self.minter = msg.sender


@internal
def _move(_from: address, _to: address, _value: uint256):
    assert _to != empty(address), "token: zero address"
    assert self.balanceOf[_from] >= _value, "token: insufficient balance"
    self.balanceOf[_from] -= _value
    self.balanceOf[_to] += _value
    log Transfer(sender=_from, receiver=_to, value=_value)


@external
def transfer(_to: address, _value: uint256) -> bool:
    self._move(msg.sender, _to, _value)
    return True


@external
def transferFrom(_from: address, _to: address, _value: uint256) -> bool:
    assert self.allowance[_from][msg.sender] >= _value, "token: insufficient allowance"
    self.allowance[_from][msg.sender] -= _value
    self._move(_from, _to, _value)
    return True


@external
def transferFromMany(_froms: DynArray[address, 256], _tos: DynArray[address, 256], _values: DynArray[uint256, 256], _ref: bytes32) -> bool:
    """Settle many trades in one transaction, in order and all or nothing: line i moves
    _values[i] from _froms[i] to _tos[i] within what _froms[i] allowed the caller (an
    exchange clearing a step's fills). A non-zero _ref settles once *for its caller*: an
    exchange that crashed after its settlement landed, and asks again, is refused instead of
    paying twice. References are the caller's own (nobody else can use up an exchange's next
    one), and what is kept under one is the hash of the lines it paid, so "already settled"
    can be checked against what was meant to be paid."""
    assert len(_froms) == len(_tos) and len(_tos) == len(_values), "token: length mismatch"
    if _ref != empty(bytes32):
        assert self.settlement[msg.sender][_ref] == empty(bytes32), "token: ref settled"
        self.settlement[msg.sender][_ref] = keccak256(abi_encode(_froms, _tos, _values))
    for i: uint256 in range(len(_froms), bound=256):
        assert self.allowance[_froms[i]][msg.sender] >= _values[i], "token: insufficient allowance"
        self.allowance[_froms[i]][msg.sender] -= _values[i]
        self._move(_froms[i], _tos[i], _values[i])
    return True


@external
def approve(_spender: address, _value: uint256) -> bool:
    self.allowance[msg.sender][_spender] = _value
    log Approval(owner=msg.sender, spender=_spender, value=_value)
    return True


@external
def transferAndCall(_to: address, _value: uint256, _data: Bytes[64]) -> bool:
    """ERC-677: transfer, then tell the receiving contract, in one transaction and with no
    allowance (how buyers fund the batch settlement contract)."""
    self._move(msg.sender, _to, _value)
    assert extcall TokenReceiver(_to).onTokenTransfer(msg.sender, _value, _data), "token: receiver refused"
    return True


@external
def approve_many(_spenders: DynArray[address, 8], _value: uint256) -> bool:
    """Approve several settlement contracts in one transaction (opening an Agora account)."""
    for spender: address in _spenders:
        self.allowance[msg.sender][spender] = _value
        log Approval(owner=msg.sender, spender=spender, value=_value)
    return True


@external
def mint(_to: address, _value: uint256):
    assert msg.sender == self.minter, "token: unauthorized"
    assert _to != empty(address), "token: zero address"
    self.totalSupply += _value
    self.balanceOf[_to] += _value
    log Transfer(sender=empty(address), receiver=_to, value=_value)
