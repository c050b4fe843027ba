"""A shard is a plain class: hosting, batching, session signing and journal recovery, tested in
one process with no Ray cluster (the shard reaches its peers through ``LocalPeers``; on a cluster
``RayShard`` gives it ``RayPeers`` and the Ray-hosted ledger and registry)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from eth_utils import keccak

from agora.agents import Envelope, Identity, Registry
from agora.agents.ray.peers import LocalPeers
from agora.agents.ray.shard import Shard
from agora.agents.ray.transport import delegation_digest
from agora.chain import MemoryLedger
from agora.tasks import LocalExecutor
from tests.agents.test_runtime import Counter, Ping


class _Registry(Registry):
    """A registry shared by shards of one process: writes apply at once, so nothing to flush."""

    errors: list[str] = []

    def flush(self) -> None:
        pass


def _shards(tmp_path: Path, n: int = 2, durable: str | None = None, ledger: MemoryLedger | None = None) -> list[Shard]:
    ledger, registry, peers = ledger or MemoryLedger(), _Registry(), LocalPeers()
    made = [
        Shard(
            i,
            ledger,
            registry,
            str(tmp_path / "store"),
            "shard-test",
            64,
            300.0,
            0.005,
            "session",
            durable=durable,
            peers=peers,
            executor=LocalExecutor(tmp_path / "store"),
        )
        for i in range(n)
    ]
    return made


def _until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_agents_on_two_shards_talk_through_signed_batches_without_ray(tmp_path: Path) -> None:
    s0, s1 = _shards(tmp_path)
    b = Counter("b", Identity.from_seed(0, "b"))
    a = Counter("a", Identity.from_seed(0, "a"), peer=b.address)
    s1.add([b])
    s0.add([a])
    placement = {a.address: 0, b.address: 1}
    for s in (s0, s1):
        s.connect([s0, s1], placement)
    s1.start([b.address])
    s0.start([a.address])
    try:
        assert _until(lambda: s0.query(a.address, "count") == 2)
        assert s1.query(b.address, "seen") == [1, 2]
        assert "negative ping" in s1.errors()["b"][0]  # the handler failed alone
        assert s1.calls >= 1 and s1.rejected_batches == 0  # batches crossed, every one genuine
    finally:
        s0.stop()
        s1.stop()


def test_a_batch_without_a_genuine_session_signature_or_delegation_is_refused(tmp_path: Path) -> None:
    (s0,) = _shards(tmp_path, n=1)
    a, b = Counter("fa", Identity.from_seed(0, "fa")), Counter("fb", Identity.from_seed(0, "fb"))
    s0.add([b])
    s0.connect([s0], {b.address: 0, a.address: 0})
    s0.start([b.address])
    mallory, rogue = Identity.from_seed(0, "mallory"), Identity.from_seed(0, "rogue-session")
    env = Envelope.seal(a.identity, b.address, Ping(n=1), nonce=1, expires=time.time() + 60, sign=False)
    batch_sig = rogue.sign_digest(keccak(env.signing_bytes()))
    s0.deliver_batch(rogue.address, [env], batch_sig, {a.address: mallory.sign_digest(delegation_digest(a.address, rogue.address))})
    s0.deliver_batch(rogue.address, [env], "0x" + "11" * 65, {a.address: a.identity.sign_digest(delegation_digest(a.address, rogue.address))})
    assert s0.rejected_batches == 2 and s0.query(b.address, "count") == 0
    assert s0.rejections() == {"fb": {"BadSignature": 2}}
    s0.deliver_batch(rogue.address, [env], batch_sig, {a.address: a.identity.sign_digest(delegation_digest(a.address, rogue.address))})
    assert _until(lambda: s0.query(b.address, "count") == 1)  # a did delegate to that key: accepted
    s0.stop()


def test_a_durable_shard_comes_back_from_its_journal_with_its_agents(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal")
    ledger = MemoryLedger()
    (s0,) = _shards(tmp_path, n=1, durable=journal, ledger=ledger)
    b = Counter("b", Identity.from_seed("durable", "b"))
    a = Counter("a", Identity.from_seed("durable", "a"), peer=b.address)
    s0.add([b, a], seeded=[("durable", "b"), ("durable", "a")])
    s0.connect([s0], {a.address: 0, b.address: 0})
    s0.start([b.address, a.address])
    assert _until(lambda: s0.query(a.address, "count") == 2)
    s0.stop()  # the process dies; its journal stays
    (again,) = _shards(tmp_path, n=1, durable=journal, ledger=ledger)  # a restart: rebuilt from the journal
    try:
        assert again.recovered == 2
        assert again.query(a.address, "count") == 2 and again.query(b.address, "seen") == [1, 2]
    finally:
        again.stop()
