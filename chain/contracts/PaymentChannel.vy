# pragma version ~=0.4.3
"""
@title Agora pay-per-call channels
@notice In the style of SingularityNET's Multi-Party Escrow. A buyer deposits into a channel
        for one provider; each call is paid off-chain by a voucher, an EIP-712 signature over
        (channel id, channel nonce, cumulative amount) bound to this contract and chain. The
        provider claims once for many calls (and many channels in one transaction); a claim
        pays the voucher's amount, lowers the deposit and bumps the nonce, so a voucher can be
        used once. The buyer tops up, extends, and reclaims what is left after expiry.
        A channel id's first 20 bytes are its sender's address, so nobody can open a channel
        under an id another buyer is about to use.
"""
from ethereum.ercs import IERC20

struct Channel:
    sender: address
    recipient: address
    deposit: uint256
    nonce: uint256
    expiration: uint256

event ChannelOpened:
    channel_id: indexed(bytes32)
    sender: indexed(address)
    recipient: indexed(address)
    deposit: uint256
    expiration: uint256

event ChannelClaimed:
    channel_id: indexed(bytes32)
    amount: uint256
    nonce: uint256

event ChannelReclaimed:
    channel_id: indexed(bytes32)
    amount: uint256

MAX_CLAIMS: constant(uint256) = 128
DOMAIN_TYPEHASH: constant(bytes32) = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
VOUCHER_TYPEHASH: constant(bytes32) = keccak256("Voucher(bytes32 channelId,uint256 nonce,uint256 amount)")

token: public(IERC20)
channels: public(HashMap[bytes32, Channel])


@deploy
def __init__(_token: address):
    self.token = IERC20(_token)


@view
@internal
def _domain() -> bytes32:
    return keccak256(abi_encode(DOMAIN_TYPEHASH, keccak256("AgoraChannel"), keccak256("1"), chain.id, self))


@view
@internal
def _signer(_id: bytes32, _nonce: uint256, _amount: uint256, _sig: Bytes[65]) -> address:
    digest: bytes32 = keccak256(concat(b"\x19\x01", self._domain(), keccak256(abi_encode(VOUCHER_TYPEHASH, _id, _nonce, _amount))))
    v: uint256 = convert(slice(_sig, 64, 1), uint256)
    return ecrecover(digest, v, extract32(_sig, 0), extract32(_sig, 32))


@external
def open(_id: bytes32, _recipient: address, _amount: uint256, _expiration: uint256):
    assert convert(convert(_id, uint256) >> 96, address) == msg.sender, "channel: not sender's id"
    assert self.channels[_id].sender == empty(address), "channel: exists"
    assert _recipient != empty(address), "channel: bad recipient"
    assert _amount > 0, "channel: bad amount"
    assert _expiration > block.timestamp, "channel: bad expiration"
    self.channels[_id] = Channel(sender=msg.sender, recipient=_recipient, deposit=_amount, nonce=0, expiration=_expiration)
    assert extcall self.token.transferFrom(msg.sender, self, _amount), "channel: transfer failed"
    log ChannelOpened(channel_id=_id, sender=msg.sender, recipient=_recipient, deposit=_amount, expiration=_expiration)


@external
def top_up(_id: bytes32, _amount: uint256):
    assert self.channels[_id].sender != empty(address), "channel: unknown"
    assert msg.sender == self.channels[_id].sender, "channel: unauthorized"
    assert _amount > 0, "channel: bad amount"
    self.channels[_id].deposit += _amount
    assert extcall self.token.transferFrom(msg.sender, self, _amount), "channel: transfer failed"


@external
def extend(_id: bytes32, _expiration: uint256):
    assert self.channels[_id].sender != empty(address), "channel: unknown"
    assert msg.sender == self.channels[_id].sender, "channel: unauthorized"
    assert _expiration > self.channels[_id].expiration, "channel: bad expiration"
    self.channels[_id].expiration = _expiration


@internal
def _claim(_id: bytes32, _amount: uint256, _sig: Bytes[65]) -> uint256:
    c: Channel = self.channels[_id]
    assert c.sender != empty(address), "channel: unknown"
    assert msg.sender == c.recipient, "channel: unauthorized"
    assert _amount <= c.deposit, "channel: bad amount"
    assert self._signer(_id, c.nonce, _amount, _sig) == c.sender, "channel: bad signature"
    self.channels[_id].deposit = c.deposit - _amount
    self.channels[_id].nonce = c.nonce + 1
    log ChannelClaimed(channel_id=_id, amount=_amount, nonce=c.nonce)
    return _amount


@external
def claim_many(_ids: DynArray[bytes32, MAX_CLAIMS], _amounts: DynArray[uint256, MAX_CLAIMS], _sigs: DynArray[Bytes[65], MAX_CLAIMS]):
    """Claim vouchers on many channels (all paying the caller) with one token transfer."""
    assert len(_ids) == len(_amounts) and len(_ids) == len(_sigs), "channel: bad claims"
    total: uint256 = 0
    for i: uint256 in range(MAX_CLAIMS):
        if i >= len(_ids):
            break
        total += self._claim(_ids[i], _amounts[i], _sigs[i])
    if total > 0:
        assert extcall self.token.transfer(msg.sender, total), "channel: transfer failed"


@external
def reclaim(_id: bytes32):
    c: Channel = self.channels[_id]
    assert c.sender != empty(address), "channel: unknown"
    assert msg.sender == c.sender, "channel: unauthorized"
    assert block.timestamp >= c.expiration, "channel: not expired"
    self.channels[_id].deposit = 0
    if c.deposit > 0:
        assert extcall self.token.transfer(c.sender, c.deposit), "channel: transfer failed"
    log ChannelReclaimed(channel_id=_id, amount=c.deposit)
