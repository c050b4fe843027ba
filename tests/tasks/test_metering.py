"""Bills from metering: each line priced by its payee's tariff, rounded up once, never over its
cap, and the same metering always gives the same bill."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agora.tasks.jobs import Metering
from agora.tasks.metering import Tariff, bill


def _m(items: int = 64, tokens: int = 900, new_tokens: int = 0, seconds: float = 1.25, gpu_seconds: float = 1.25) -> Metering:
    return Metering(items=items, tokens=tokens, new_tokens=new_tokens, seconds=seconds, gpu_seconds=gpu_seconds, device="cpu")


def test_each_party_is_billed_by_its_own_tariff() -> None:
    tariffs = [
        Tariff(payee="P", role="provider", cap=10_000, per_gpu_second=1_000),
        Tariff(payee="M", role="model_owner", cap=5_000, per_call=200, per_1k_tokens=1_000),
        Tariff(payee="D", role="data_owner", cap=900, per_item=3),
    ]
    b = bill(_m(new_tokens=100), tariffs)
    assert b.amounts() == [1_250, 200 + 1_000, 192]  # 1.25 GPU-s; 1 call + 1,000 tokens; 64 rows
    assert b.total == 2_642 and b.lines[1].basis == "1 call + 1000 tokens"


def test_lines_never_exceed_their_caps_and_round_up_once() -> None:
    tariffs = [Tariff(payee="P", role="provider", cap=1_000, per_second=1_000), Tariff(payee="D", role="data_owner", cap=100, per_item=3)]
    b = bill(_m(seconds=0.0004, items=64), tariffs)
    assert b.amounts() == [1, 100]  # 0.4 base units rounds up to 1; 192 is capped at 100
    assert b.lines[1].basis.endswith("(capped)")


@given(st.integers(0, 10_000), st.integers(0, 10**6), st.integers(0, 10**5), st.floats(0, 1e4), st.integers(0, 10**9), st.integers(0, 10**12))
def test_bills_are_deterministic_capped_and_cover_the_use(items: int, tokens: int, new: int, seconds: float, rate: int, cap: int) -> None:
    m = _m(items=items, tokens=tokens, new_tokens=new, seconds=seconds, gpu_seconds=seconds)
    tariffs = [Tariff(payee="P", role="provider", cap=cap, per_gpu_second=rate, per_1k_tokens=rate)]
    first, again = bill(m, tariffs), bill(m, tariffs)
    assert first == again
    (line,) = first.lines
    exact = seconds * rate + rate * (tokens + new) / 1000
    assert 0 <= line.amount <= cap
    assert line.amount == cap or line.amount >= exact - 1e-6 * max(1.0, exact)  # never paid for less than was used
