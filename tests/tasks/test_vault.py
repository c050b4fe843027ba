"""Compute-to-data: a dataset in its owner's vault is read only by the models and tasks its
policy allows, by jobs that run where the vault is; only results leave, and every use, granted
or refused, is in the owner's access log."""

from __future__ import annotations

import pytest

from agora.tasks import JobSpec, LocalExecutor, RayExecutor, verify_result
from agora.tasks.vault import AccessDenied

ROWS = ["a private sentence", "another private sentence", "a third one"]


def test_policy_decides_who_reads_and_the_log_shows_every_attempt(store, minilm_hash) -> None:
    executor = LocalExecutor(store.root)
    name, vault = executor.open_vault("0xOwner")
    digest = vault.add(ROWS, "secret", {"price_per_use": 5, "models": [minilm_hash], "tasks": ["embedding"]})
    assert not store.has(digest)  # the rows never enter the shared store
    spec = JobSpec(job_id="v1", model_hash=minilm_hash, dataset_hash=digest, vault=name)
    result = executor.run(spec, requester="0xProvider")
    verify_result(result, spec)
    assert result.shape == (3, 384) and result.metering.items == 3
    with pytest.raises(AccessDenied, match="may not read"):
        executor.run(spec.model_copy(update={"model_hash": "f" * 64, "job_id": "v2"}), requester="0xMallory")
    with pytest.raises(AccessDenied, match="not allowed"):
        executor.run(spec.model_copy(update={"task": "classification", "job_id": "v3"}), requester="0xProvider")
    with pytest.raises(AccessDenied, match="compute-to-data only"):
        vault.download(digest, "0xMallory")
    log = vault.access_log(digest)
    assert [(r.requester, r.action, r.granted) for r in log] == [
        ("0xProvider", "compute", True),
        ("0xMallory", "compute", False),
        ("0xProvider", "compute", False),
        ("0xMallory", "download", False),
    ]
    assert log[0].items == 3 and log[0].result_hash == result.result_hash and log[0].job_id == "v1"


def test_raw_download_only_where_the_policy_allows_it(store) -> None:
    _, vault = LocalExecutor(store.root).open_vault("0xOpen")
    digest = vault.add(ROWS, "open", {"price_per_use": 1, "raw_download": True})
    assert vault.download(digest, "0xAnyone").decode().count("\n") == 3


@pytest.mark.ray
def test_on_ray_the_job_runs_on_the_vaults_node_and_only_the_result_leaves(ray_cluster, store, minilm_hash) -> None:
    import ray

    executor = RayExecutor(store.root)
    name, vault = executor.open_vault("0xRayOwner")
    digest = vault.add(ROWS, "secret", {"price_per_use": 5, "models": [minilm_hash]})
    assert not store.has(digest)
    spec = JobSpec(job_id="r1", model_hash=minilm_hash, dataset_hash=digest, vault=name)
    result = RayExecutor(store.root).run(spec, timeout_s=120, requester="0xProvider")  # another executor finds it by name
    verify_result(result, spec)
    node = ray.get(ray.get_actor(name).__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))
    assert result.metering.node_id == node  # ran where the data lives
    assert [(r.requester, r.granted) for r in vault.access_log()] == [("0xProvider", True)]
    with pytest.raises(AccessDenied, match="may not read"):
        RayExecutor(store.root).run(spec.model_copy(update={"model_hash": "e" * 64}), timeout_s=60, requester="0xM")
    assert [r.granted for r in vault.access_log()] == [True, False]
