"""GPU memory as a scheduling resource: Ray refuses to co-locate jobs whose memory does not fit,
a provider never promises the same memory twice, and the buyer's auction weighs free memory."""

from __future__ import annotations

import time

import pytest

from agora.economy.auction import Bid, ReverseAuction
from agora.economy.errors import InvalidBid
from agora.tasks import JobSpec, Resources
from agora.tasks.scheduling import GPU_MEMORY, Capacity, CapacityExceeded, job_options, node_resources

H = "a" * 64


def _spec(job_id: str, gpus: float, memory: int) -> JobSpec:
    return JobSpec(job_id=job_id, model_hash=H, inputs=["x"], resources=Resources(gpus=gpus, gpu_memory_mb=memory, cpus=0))


def test_job_options_ask_for_gpu_memory_only_where_the_cluster_has_it() -> None:
    spec = _spec("o", 0.5, 6000)
    assert job_options(spec, {GPU_MEMORY: 16000.0}) == {"num_gpus": 0.5, "num_cpus": 0, "resources": {GPU_MEMORY: 6000.0}}
    assert "resources" not in job_options(spec, {"GPU": 2.0})  # an undeclared resource would never schedule
    with pytest.raises(CapacityExceeded, match="16000"):
        job_options(_spec("big", 1, 20000), {GPU_MEMORY: 16000.0})
    assert node_resources(24000) == {GPU_MEMORY: 24000.0}  # no real GPU here: the logical figure


@pytest.mark.ray
def test_ray_will_not_put_two_jobs_on_memory_that_holds_one(ray_cluster) -> None:
    """Two half-GPU jobs fit the GPU count of one card, but not its memory: the second waits
    until the first ends (the session's Ray declares 16,000 MB over its 2 logical GPUs)."""
    import ray

    @ray.remote
    def hold(seconds: float) -> tuple[float, float]:
        start = time.time()
        time.sleep(seconds)
        return start, time.time()

    big = job_options(_spec("a", 0.5, 10000), ray.cluster_resources())
    first = hold.options(**big).remote(1.5)
    second = hold.options(**big).remote(0.1)
    small = hold.options(**job_options(_spec("c", 0.5, 4000), ray.cluster_resources())).remote(0.1)
    (s1, e1), (s2, _), (s3, _) = ray.get([first, second, small], timeout=60)
    assert s2 >= e1 - 0.05  # waited for the memory, though GPU count was free
    assert s3 < e1  # a job that fits ran alongside


def test_capacity_book_never_promises_memory_twice() -> None:
    book = Capacity(gpus=1, gpu_memory_mb=16000, cpus=4)
    book.reserve("j1", Resources(gpus=0.5, gpu_memory_mb=12000, cpus=1))
    assert "4000 MB free" in book.fits(Resources(gpus=0.5, gpu_memory_mb=8000, cpus=1))
    with pytest.raises(CapacityExceeded):
        book.reserve("j2", Resources(gpus=0.5, gpu_memory_mb=8000, cpus=1))
    book.reserve("j1", Resources(gpus=0.5, gpu_memory_mb=12000, cpus=1))  # the same job again: no double count
    assert book.free().gpu_memory_mb == 4000
    book.release("j1")
    book.reserve("j2", Resources(gpus=0.5, gpu_memory_mb=8000, cpus=1))
    assert book.free() == Resources(gpus=0.5, gpu_memory_mb=8000, cpus=3)


def test_auction_refuses_bidders_without_the_memory_and_prefers_headroom() -> None:
    auction = ReverseAuction(max_price=1000, gpu_memory_mb=8000)
    with pytest.raises(InvalidBid, match="8000"):
        auction.submit(Bid(bidder="tight", price=10, free_gpu_memory_mb=4000))
    auction.submit(Bid(bidder="full-ish", price=100, free_gpu_memory_mb=8000))  # the job takes all it has: cost 125
    auction.submit(Bid(bidder="roomy", price=110, free_gpu_memory_mb=80000))  # 110 * 1.025 = 112.75
    assert auction.clear().winner == "roomy"
    cheap = ReverseAuction(max_price=1000, gpu_memory_mb=8000)
    cheap.submit(Bid(bidder="full-ish", price=100, free_gpu_memory_mb=8000))
    cheap.submit(Bid(bidder="roomy", price=130, free_gpu_memory_mb=80000))
    assert cheap.clear().winner == "full-ish"  # headroom is worth something, not everything
