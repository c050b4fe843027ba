"""Guests of a running deployment (agents.deployment.Guest, what `agora gateway --join` uses):
agents of another process that the deployment's durable shards admit for a lease. Messages flow
both ways while the guest stays; a guest that dies without leaving is let go when its lease
lapses, and what was sent to it is dropped, so the deployment still drains and stops."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from agora.agents import Agent, Context, Identity, on_interval, on_message
from agora.agents.errors import RuntimeFailure
from tests.agents.test_deployment import Beacon, Beat

pytestmark = [pytest.mark.ray, pytest.mark.slow]


class Ponger(Agent):
    """Deployed: answers every beat, and keeps sending its last caller beats of its own every
    50 ms until that agent is gone from the runtime (sending to it is then refused)."""

    def __init__(self, name: str, identity: Identity) -> None:
        super().__init__(name, identity)
        self.pinged, self.peer, self.gone = 0, "", ""

    @on_message(Beat)
    def ping(self, ctx: Context, sender: str, msg: Beat) -> None:
        self.pinged += 1
        self.peer = sender
        ctx.send(sender, Beat(k=msg.k))

    @on_interval(0.05)
    def news(self, ctx: Context) -> None:
        if not self.peer:
            return
        try:
            ctx.send(self.peer, Beat(k=-1))
        except RuntimeFailure:
            self.peer, self.gone = "", self.peer

    def left(self) -> str:
        return self.gone


def test_a_guest_is_answered_while_it_stays_and_let_go_when_it_dies_without_leaving(ray_cluster, tmp_path) -> None:
    import ray

    from agora.agents.ray import deployment

    name, seed = f"pongs-{uuid.uuid4().hex[:6]}", "guests"
    population = tmp_path / "pongs.yaml"
    population.write_text(json.dumps({"name": "pongs", "seed": seed, "agents": [{"role": "tests.agents.test_guest:Ponger", "name": "ponger"}]}))
    manifest = deployment.deploy(population, name, tmp_path / "state", shards=2)
    pinger = Beacon("pinger", Identity.from_seed(seed, "pinger"), manifest["agents"]["ponger"])  # beats the ponger every 50 ms
    guest = deployment.Guest(name, [pinger], lease_s=2.0, renew_s=0.4)
    deadline = time.monotonic() + 30
    while guest.query(guest.addresses[0], "beats_heard") < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert guest.query(guest.addresses[0], "beats_heard") >= 20  # beats reached the deployment, answers came back to the guest
    time.sleep(2.5)  # longer than the lease: renewals keep the guest admitted
    heard = guest.query(guest.addresses[0], "beats_heard")
    time.sleep(0.5)
    assert guest.query(guest.addresses[0], "beats_heard") > heard and guest.query(manifest["agents"]["ponger"], "left") == ""
    with pytest.raises(deployment.DeploymentError, match="no agent"):
        guest.query("0x" + "00" * 20, "beats_heard")

    guest._stop.set()  # the guest's process dies: no more renewals, its shard gone without a word
    ray.kill(guest.shard)
    time.sleep(3.0)  # past the lease: the deployment's shards dismissed it and dropped what they owed it
    assert guest.query(manifest["agents"]["ponger"], "left") == guest.addresses[0]  # sending to it is refused now
    assert deployment.stop(name, drain_timeout=10)["agents"] == 1  # else the batches owed to the dead guest never drain
