"""Real inference with the packaged MiniLM, in-process and as a Ray task on a logical GPU."""

from __future__ import annotations

import numpy as np
import pytest

from agora.tasks import JobSpec, LocalExecutor, RayExecutor, Resources, UnknownArtifact, verify_embeddings

TEXTS = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "The stock market fell sharply today."]


def test_local_embeddings_are_semantic(store, minilm_hash) -> None:
    result = LocalExecutor(store.root).run(JobSpec(job_id="j1", model_hash=minilm_hash, inputs=TEXTS))
    verify_embeddings(result, len(TEXTS))
    v = result.array()
    assert v.shape == (3, 384)
    sim = v @ v.T
    assert sim[0, 1] > 0.5 > sim[0, 2]  # the two cat sentences are close, finance is far
    assert result.metering.items == 3 and result.metering.tokens > 3


def test_dataset_job_reads_from_store(store, minilm_hash) -> None:
    digest = store.put_bytes(b'{"text": "one"}\n{"text": "two"}\n', "d.jsonl")
    result = LocalExecutor(store.root).run(JobSpec(job_id="j2", model_hash=minilm_hash, dataset_hash=digest))
    assert result.shape == (2, 384)


def test_unknown_model_is_a_typed_error(store) -> None:
    with pytest.raises(UnknownArtifact):
        LocalExecutor(store.root).run(JobSpec(job_id="j3", model_hash="b" * 64, inputs=["x"]))


@pytest.mark.ray
def test_ray_task_gets_a_gpu_and_matches_local(ray_cluster, store, minilm_hash) -> None:
    spec = JobSpec(job_id="j4", model_hash=minilm_hash, inputs=TEXTS, resources=Resources(gpus=1, cpus=1))
    remote = RayExecutor(store.root).run(spec, timeout_s=120)
    assert remote.metering.gpu_ids in (["0"], ["1"])  # Ray scheduled it on a (logical) GPU
    local = LocalExecutor(store.root).run(spec)
    assert np.allclose(remote.array(), local.array(), atol=1e-5)


@pytest.mark.ray
def test_ray_errors_come_back_typed(ray_cluster, store) -> None:
    with pytest.raises(UnknownArtifact):
        RayExecutor(store.root).run(JobSpec(job_id="j5", model_hash="c" * 64, inputs=["x"]), timeout_s=60)


@pytest.mark.ray
def test_a_two_gpu_job_runs_data_parallel_in_a_placement_group(ray_cluster, store, minilm_hash) -> None:
    """Two whole GPUs: a placement group reserves both (all or nothing), one slice per GPU; the
    merged result is the single-GPU result, rows in input order."""
    from agora.tasks.verify import agreement

    texts = [f"text number {i} about {w}" for i, w in enumerate(["gpus", "rain", "goals", "rates", "cats", "ships", "tea"])]
    spec = JobSpec(job_id="dp", model_hash=minilm_hash, inputs=texts, resources=Resources(gpus=2, cpus=1, gpu_memory_mb=4000))
    merged = RayExecutor(store.root).run(spec, timeout_s=180)
    assert merged.shape == (7, 384) and merged.metering.items == 7
    assert sorted(merged.metering.gpu_ids) == ["0", "1"]  # one slice on each GPU
    single = LocalExecutor(store.root).run(spec.model_copy(update={"resources": Resources()}))
    assert agreement(merged, single) > 0.9999
    import ray

    assert ray.util.placement_group_table() == {} or all(g["state"] == "REMOVED" for g in ray.util.placement_group_table().values())


@pytest.mark.ray
def test_inference_runs_with_the_threads_of_the_cpus_it_asked_for(ray_cluster, store, minilm_hash) -> None:
    spec = JobSpec(job_id="t1", model_hash=minilm_hash, inputs=TEXTS, resources=Resources(cpus=1))
    assert RayExecutor(store.root).run(spec, timeout_s=120).metering.threads == 1  # Ray sets OMP_NUM_THREADS from num_cpus


def _kill_running_job_worker(deadline_s: float = 60.0) -> int:
    """SIGKILL the worker running a ``run_job`` task once it has run a second (model loaded)."""
    from agora.simulations.chaos import kill_a_job_worker

    pid = kill_a_job_worker(timeout=deadline_s, settle_s=1.0)
    assert pid is not None, "no run_job worker appeared"
    return pid


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("crash_retries", [1, 0])
def test_a_job_whose_worker_dies_is_rerun_by_ray_or_fails_typed(ray_cluster, store, minilm_hash, crash_retries) -> None:
    """A worker killed mid-job: with a crash retry Ray runs the job again and the result is
    the same as an undisturbed run; without one the job fails with a typed error (the provider
    then refunds and the buyer may call elsewhere)."""
    import threading

    from agora.tasks import JobFailed

    texts = [f"sentence number {i} about a market for GPUs" for i in range(1200)]
    spec = JobSpec(job_id=f"crash-{crash_retries}", model_hash=minilm_hash, inputs=texts, resources=Resources(cpus=1), crash_retries=crash_retries)
    killed: list[int] = []
    killer = threading.Thread(target=lambda: killed.append(_kill_running_job_worker()))
    killer.start()
    try:
        if crash_retries:
            result = RayExecutor(store.root).run(spec, timeout_s=180)
            killer.join()
            assert killed and result.shape == (1200, 384)
            small = spec.model_copy(update={"inputs": texts[:5]})
            assert np.allclose(result.array()[:5], LocalExecutor(store.root).run(small).array(), atol=1e-5)
        else:
            with pytest.raises(JobFailed, match="failed on Ray"):
                RayExecutor(store.root).run(spec, timeout_s=180)
    finally:
        killer.join()
    assert killed
