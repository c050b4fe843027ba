from __future__ import annotations

import pickle

import pytest

from agora.agents import BadSignature, Envelope, Identity, Message, UnknownMessage
from agora.agents.identity import recover_message


class Ping(Message):
    text: str


class Pong(Message):
    text: str
    count: int = 0


def test_keys_derive_from_the_seed() -> None:
    a, b = Identity.from_seed(1, "alice"), Identity.from_seed(1, "alice")
    assert a.address == b.address
    assert Identity.from_seed(2, "alice").address != a.address
    assert Identity.from_seed(1, "bob").address != a.address


def test_key_never_shows_in_text() -> None:
    ident = Identity.from_seed(1, "alice")
    key_hex = pickle.loads(pickle.dumps(ident))._account.key.hex()
    assert key_hex not in repr(ident) and key_hex not in str(ident)
    assert pickle.loads(pickle.dumps(ident)).address == ident.address


def test_signatures_recover_the_signer() -> None:
    ident = Identity.from_seed(1, "alice")
    sig = ident.sign_message(b"hello")
    assert recover_message(b"hello", sig) == ident.address
    assert recover_message(b"hellO", sig) != ident.address


def test_schema_digest_tells_protocols_apart() -> None:
    assert Ping.schema_digest() != Pong.schema_digest()
    assert len(Ping.schema_digest()) == 64 and Ping.schema_digest() == Ping.schema_digest()


def test_envelope_round_trip_and_rejections() -> None:
    alice, bob, mallory = (Identity.from_seed(0, n) for n in ("alice", "bob", "mallory"))
    types = {Ping.schema_digest(): Ping}
    env = Envelope.seal(alice, bob.address, Ping(deal_id="d1", text="hi"), nonce=1)
    msg = env.open(types)
    assert msg == Ping(deal_id="d1", text="hi")

    tampered = env.replace(payload=Ping(deal_id="d1", text="pay me").model_dump_json())
    with pytest.raises(BadSignature):
        tampered.open(types)
    impostor = Envelope.seal(mallory, bob.address, Ping(text="hi"), nonce=1).replace(sender=alice.address)
    with pytest.raises(BadSignature, match="signed by"):
        impostor.open(types)
    with pytest.raises(BadSignature):
        env.replace(signature="0xdead").open(types)
    with pytest.raises(UnknownMessage):
        Envelope.seal(alice, bob.address, Pong(text="x"), nonce=2).open(types)
    unsigned = Envelope.seal(alice, bob.address, Ping(text="x"), nonce=3, sign=False)
    assert unsigned.signature == "" and unsigned.open(types, verify=False).text == "x"
    with pytest.raises(BadSignature):
        unsigned.open(types)


def test_keystore_round_trip_and_wrong_password(tmp_path) -> None:
    import json

    from agora.agents import KeystoreError

    me = Identity.from_seed(0, "deploy")
    path = tmp_path / "key.json"
    path.write_text(json.dumps(me.to_keystore("correct horse", kdf="pbkdf2", iterations=2000)))
    text = path.read_text()
    assert bytes(me._account.key).hex() not in text and me.address[2:].lower() in text.lower()
    assert Identity.from_keystore(path, "correct horse").address == me.address
    with pytest.raises(KeystoreError, match="decrypt"):
        Identity.from_keystore(path, "wrong")
    with pytest.raises(KeystoreError, match="read"):
        Identity.from_keystore(tmp_path / "missing.json", "x")
    with pytest.raises(KeystoreError, match="password"):
        me.to_keystore("")


def test_seed_phrase_derivation_matches_the_standard_path() -> None:
    from agora.agents import KeystoreError

    phrase = "test test test test test test test test test test test junk"  # anvil's well-known accounts
    assert Identity.from_mnemonic(phrase, 0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert Identity.from_mnemonic(phrase, 1).address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    third = Identity.from_mnemonic(phrase, 2)
    assert repr(third) == f"Identity({third.address})" and bytes(third._account.key).hex() not in repr(third)
    with pytest.raises(KeystoreError, match="seed phrase"):
        Identity.from_mnemonic("not a valid phrase at all", 0)


def test_fast_envelope_signatures_are_plain_eip191() -> None:
    """Envelopes are signed through libsecp256k1 directly; the bytes are eth-account's."""
    from eth_utils import keccak

    from agora.agents.identity import recover_digest, recover_message

    me = Identity.from_seed(0, "fast")
    digest = keccak(b"envelope")
    signature = me.sign_digest(digest)
    assert signature == me.sign_message(digest)  # deterministic (RFC 6979): identical to eth-account's
    assert recover_message(digest, signature) == me.address == Identity.from_seed(0, "fast").address
    assert recover_digest(digest, signature) == me.address.lower()
    with pytest.raises(ValueError, match="65 bytes"):
        recover_digest(digest, signature[:-2])
