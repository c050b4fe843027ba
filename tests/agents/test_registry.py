from __future__ import annotations

import pytest

from agora.agents import ComputeOffer, DatasetOffer, Identity, InvalidOffer, ModelOffer, Registry, UnknownOffer

OWNER = "0x" + "12" * 20
H1, H2 = "a" * 64, "b" * 64


def test_publish_and_find_by_capability() -> None:
    reg = Registry()
    reg.register_model(ModelOffer(owner=OWNER, model_hash=H1, name="mini", price_per_call=5))
    reg.register_model(ModelOffer(owner=OWNER, model_hash=H2, name="mini", price_per_call=3))
    reg.register_model(ModelOffer(owner=OWNER, model_hash="c" * 64, name="gen", task="generation", price_per_call=1))
    assert [m.model_hash for m in reg.find_models(task="embedding")] == [H2, H1]  # cheapest first
    assert reg.find_models(name="nope") == []
    assert reg.model(H1).price_per_call == 5
    reg.register_compute(ComputeOffer(owner=OWNER, gpus=1, gpu_memory_mb=8000, price_per_second=2))
    reg.register_compute(ComputeOffer(owner="0x" + "34" * 20, gpus=0, price_per_second=1))
    assert [c.gpus for c in reg.find_compute(gpus=1)] == [1]
    assert len(reg.find_compute()) == 2
    assert reg.find_compute(gpus=1, gpu_memory_mb=16000) == []
    reg.register_dataset(DatasetOffer(owner=OWNER, dataset_hash=H1, name="d", items=3, price_per_use=0))
    assert reg.find_datasets("d")[0].items == 3


@pytest.mark.parametrize("price", [-1, 1.5, "10", None, True])
def test_bad_prices_are_refused(price) -> None:
    with pytest.raises(InvalidOffer, match="price_per_call"):
        ModelOffer(owner=OWNER, model_hash=H1, name="m", price_per_call=price)
    with pytest.raises(InvalidOffer, match="price_per_second"):
        ComputeOffer(owner=OWNER, gpus=1, price_per_second=price)


def test_bad_fields_are_named() -> None:
    with pytest.raises(InvalidOffer, match="owner"):
        ModelOffer(owner="alice", model_hash=H1, name="m", price_per_call=1)
    with pytest.raises(InvalidOffer, match="model_hash"):
        ModelOffer(owner=OWNER, model_hash="xyz", name="m", price_per_call=1)
    with pytest.raises(InvalidOffer, match="ModelOffer"):
        Registry().register_model({"owner": OWNER})  # type: ignore[arg-type]


def test_unknown_keys_raise_typed_errors() -> None:
    reg = Registry()
    with pytest.raises(UnknownOffer, match="model"):
        reg.model(H1)
    with pytest.raises(UnknownOffer):
        reg.dataset(H1)
    with pytest.raises(UnknownOffer):
        reg.compute(OWNER)


def test_one_reputation_for_every_market() -> None:
    ids = {n: Identity.from_seed("rep", n).address for n in ("verifier", "buyer", "good", "bad", "sybil1", "sybil2")}
    registry = Registry(pretrusted=[ids["verifier"]])
    registry.rate(ids["verifier"], ids["good"], True, 100, "compute")
    registry.rate(ids["verifier"], ids["bad"], True, 10, "model")
    registry.rate(ids["verifier"], ids["bad"], False, 100, "data")  # its data failed: net negative
    for _ in range(50):
        registry.rate(ids["sybil1"], ids["sybil2"], True, 10**6, "compute")
        registry.rate(ids["sybil2"], ids["sybil1"], True, 10**6, "compute")
    trust = registry.trust(ids["buyer"], [ids["good"], ids["bad"], ids["sybil1"], ids["sybil2"]])
    assert trust[ids["good"]] == 1.0 and trust[ids["bad"]] == 0.0
    assert trust[ids["sybil1"]] < 1e-9 and trust[ids["sybil2"]] < 1e-9
    with pytest.raises(InvalidOffer, match="address"):
        registry.rate("nobody", ids["good"], True)
    with pytest.raises(InvalidOffer, match="amount"):
        registry.rate(ids["buyer"], ids["good"], True, 0)
    assert registry.reputation.outcomes[ids["good"]] == {"verified": 1, "failed": 0}


def test_services_live_by_heartbeat_and_search_filters() -> None:
    from agora.agents import ServiceRecord

    ids = {n: Identity.from_seed("disc", n).address for n in ("cheap", "dear", "quiet", "buyer")}
    reg = Registry()
    for name, price, ttl in (("cheap", 5, 60.0), ("dear", 9, 60.0), ("quiet", 1, 10.0)):
        reg.register_service(ServiceRecord(address=ids[name], name=name, capability="gpu-hour", price=price, ttl=ttl, protocols={"deal": "d1"}), now=0.0)
    assert [r.name for r in reg.search("gpu-hour", now=5.0)] == ["quiet", "cheap", "dear"]  # cheapest first
    assert [r.name for r in reg.search("gpu-hour", now=11.0)] == ["cheap", "dear"]  # quiet's ttl ran out
    reg.heartbeat(ids["quiet"], now=11.0)
    assert reg.search("gpu-hour", now=20.0)[0].name == "quiet"  # renewed
    assert [r.name for r in reg.search("gpu-hour", now=20.0, max_price=5)] == ["quiet", "cheap"]
    assert reg.search("gpu-hour", now=20.0, protocol="other") == []
    reg.rate(ids["buyer"], ids["dear"], True, 100, "compute")
    assert [r.name for r in reg.search("gpu-hour", now=20.0, min_reputation=0.5, viewer=ids["buyer"])] == ["dear"]
    assert reg.expire(now=100.0) == 3 and reg.search("gpu-hour", now=100.0) == []
    with pytest.raises(UnknownOffer):
        reg.heartbeat(ids["quiet"], now=101.0)
    with pytest.raises(InvalidOffer, match="price"):
        ServiceRecord(address=ids["cheap"], name="x", capability="gpu-hour", price=-1)


def test_roles_list_their_services(store) -> None:
    from agora.simulations.demo import TradeConfig, build_runtime, demo_texts, make_agents

    config = TradeConfig(runtime="local", ledger="memory", store_root=str(store.root))
    runtime = build_runtime(config)
    agents = make_agents(config, demo_texts())
    for agent in agents.values():
        runtime.add(agent)
    runtime.start()
    now = runtime.now()
    compute = runtime.registry.search("compute", now=now)
    assert {r.name for r in compute} == {"gpu-a", "gpu-b", "cpu-c"} and compute[0].name == "cpu-c"
    assert runtime.registry.search("model", now=now)[0].terms["name"] == "all-MiniLM-L6-v2"
    assert runtime.registry.search("dataset", now=now)[0].protocols == agents["data_owner"].protocol_digests()
    runtime.shutdown()
