"""The headroom policy and the join ledger: pure rules, time and samples injected."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveshow.media.headroom import (
    ADMIT,
    CPU,
    LOOP_LAG,
    OK,
    VIEWERS,
    HeadroomLimits,
    Sample,
    Verdict,
    decide,
    smooth,
)
from liveshow.media.joins import JoinLedger

LIMITS = HeadroomLimits(max_viewers=100, cpu_ceiling=0.8, lag_ceiling_s=0.05, resume_ratio=0.75, hold_s=3.0)


def sample(viewers: int = 10, cpu: float = 0.1, lag: float = 0.001, at: float = 100.0) -> Sample:
    return Sample(viewers, cpu, lag, at)


# ---------------------------------------------------------------- admit or refuse, from a calm state


def test_a_calm_process_admits() -> None:
    assert decide(LIMITS, ADMIT, sample()) == Verdict(True, OK, 0, None)


@pytest.mark.parametrize(
    ("viewers", "admit"), [(0, True), (98, True), (99, True), (100, False), (101, False), (10_000, False)]
)
def test_the_viewer_cap_is_exact(viewers: int, admit: bool) -> None:
    verdict = decide(LIMITS, ADMIT, sample(viewers=viewers))
    assert verdict.admit is admit
    if not admit:
        assert verdict.reason == VIEWERS and verdict.retry_after_s == math.ceil(LIMITS.full_retry_s)
        assert verdict.over_at is None  # no hysteresis on the count: one leaving makes room for one


@pytest.mark.parametrize(("cpu", "admit"), [(0.0, True), (0.79, True), (0.8, False), (1.5, False)])
def test_the_cpu_ceiling(cpu: float, admit: bool) -> None:
    verdict = decide(LIMITS, ADMIT, sample(cpu=cpu))
    assert verdict.admit is admit
    if not admit:
        assert verdict == Verdict(False, CPU, 3, over_at=100.0)


@pytest.mark.parametrize(("lag", "admit"), [(0.0, True), (0.049, True), (0.05, False), (2.0, False)])
def test_the_loop_lag_ceiling(lag: float, admit: bool) -> None:
    verdict = decide(LIMITS, ADMIT, sample(lag=lag))
    assert verdict.admit is admit
    if not admit:
        assert verdict == Verdict(False, LOOP_LAG, 3, over_at=100.0)


def test_cpu_is_named_before_lag_and_both_before_the_viewer_cap() -> None:
    assert decide(LIMITS, ADMIT, sample(viewers=500, cpu=0.9, lag=1.0)).reason == CPU
    assert decide(LIMITS, ADMIT, sample(viewers=500, cpu=0.1, lag=1.0)).reason == LOOP_LAG


@pytest.mark.parametrize("field", ["max_viewers", "cpu_ceiling", "lag_ceiling_s"])
def test_a_limit_of_zero_is_off(field: str) -> None:
    limits = HeadroomLimits(**{**dict(max_viewers=100, cpu_ceiling=0.8, lag_ceiling_s=0.05), field: 0})
    huge = sample(viewers=10**6, cpu=50.0, lag=60.0)
    verdict = decide(limits, ADMIT, huge)
    turned_off = {"max_viewers": VIEWERS, "cpu_ceiling": CPU, "lag_ceiling_s": LOOP_LAG}[field]
    assert not verdict.admit and verdict.reason != turned_off
    assert decide(HeadroomLimits(), ADMIT, huge) == ADMIT  # every limit off: always admit


# ---------------------------------------------------------------- hysteresis


def over(at: float = 100.0, reason: str = CPU) -> Verdict:
    return Verdict(False, reason, 3, over_at=at)


def test_back_under_the_ceiling_but_over_the_resume_level_keeps_refusing_and_restarts_the_hold() -> None:
    # 0.7 is under the 0.8 ceiling but over 0.75 * 0.8 = 0.6
    verdict = decide(LIMITS, over(at=100.0), sample(cpu=0.7, at=110.0))
    assert verdict == Verdict(False, CPU, 3, over_at=110.0)


def test_under_the_resume_level_it_waits_out_the_hold() -> None:
    verdict = decide(LIMITS, over(at=100.0), sample(cpu=0.5, at=101.0))
    assert verdict == Verdict(False, CPU, 2, over_at=100.0)  # 2 s of the 3 s hold left
    verdict = decide(LIMITS, over(at=100.0), sample(cpu=0.5, at=102.5))
    assert verdict == Verdict(False, CPU, 1, over_at=100.0)  # never a Retry-After of 0


def test_after_the_hold_it_admits_and_forgets_the_overload() -> None:
    assert decide(LIMITS, over(at=100.0), sample(cpu=0.5, at=103.0)) == ADMIT


def test_the_lag_resume_level_holds_a_cpu_refusal_too() -> None:
    # CPU is calm but the loop lags over its resume level (0.75 * 50 ms): still refusing, for the lag
    verdict = decide(LIMITS, over(at=100.0), sample(cpu=0.1, lag=0.04, at=200.0))
    assert verdict == Verdict(False, LOOP_LAG, 3, over_at=200.0)


def test_after_a_cpu_refusal_ends_the_viewer_cap_still_applies() -> None:
    verdict = decide(LIMITS, over(at=100.0), sample(viewers=100, cpu=0.1, at=200.0))
    assert verdict.reason == VIEWERS and verdict.over_at is None


def test_a_cpu_hovering_at_the_ceiling_does_not_flap() -> None:
    """CPU oscillating around the ceiling (0.78 .. 0.82) every 250 ms: one refusal, held throughout."""
    verdict = ADMIT
    verdicts = []
    for i in range(200):
        cpu = 0.82 if i % 2 else 0.78
        verdict = decide(LIMITS, verdict, sample(cpu=cpu, at=100.0 + i * 0.25))
        verdicts.append(verdict.admit)
    assert verdicts[0] is True and not any(verdicts[1:])


@given(st.lists(st.tuples(st.floats(0, 2), st.floats(0, 0.2), st.floats(0.01, 1.0)), min_size=1, max_size=60))
def test_it_admits_only_when_everything_is_under_its_ceiling_and_never_right_after_an_overload(
    steps: list[tuple[float, float, float]],
) -> None:
    verdict, now, last_over = ADMIT, 0.0, None
    for cpu, lag, dt in steps:
        now += dt
        verdict = decide(LIMITS, verdict, sample(cpu=cpu, lag=lag, at=now))
        if cpu >= LIMITS.cpu_ceiling or lag >= LIMITS.lag_ceiling_s:
            last_over = now
            assert not verdict.admit
        if verdict.admit:
            assert cpu < LIMITS.cpu_ceiling and lag < LIMITS.lag_ceiling_s
            assert last_over is None or now - last_over >= LIMITS.hold_s
        else:
            assert verdict.retry_after_s >= 1


@pytest.mark.parametrize(
    "fields",
    [
        {"max_viewers": -1},
        {"cpu_ceiling": -0.1},
        {"lag_ceiling_s": -1.0},
        {"resume_ratio": 0.0},
        {"resume_ratio": 1.5},
        {"hold_s": -1.0},
        {"full_retry_s": 0.0},
    ],
)
def test_bad_limits_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HeadroomLimits(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- smoothing


def test_smooth_moves_by_the_share_of_tau_the_step_covers() -> None:
    assert smooth(0.0, 1.0, 1.0, 1.0) == pytest.approx(1 - math.exp(-1))
    assert smooth(0.0, 1.0, 0.25, 1.0) == pytest.approx(1 - math.exp(-0.25))
    # two steps of 0.5 s land where one of 1 s does
    assert smooth(smooth(0.0, 1.0, 0.5, 1.0), 1.0, 0.5, 1.0) == pytest.approx(smooth(0.0, 1.0, 1.0, 1.0))


def test_smooth_edges() -> None:
    assert smooth(0.3, 1.0, 0.0, 1.0) == 0.3  # no time passed: nothing changes
    assert smooth(0.3, 1.0, -1.0, 1.0) == 0.3
    assert smooth(0.3, 1.0, 1000.0, 1.0) == 1.0  # a long gap: the new value
    assert smooth(0.3, 1.0, 0.1, 0.0) == 1.0  # no smoothing


# ---------------------------------------------------------------- the join ledger


def test_joins_beyond_the_limit_wait_for_a_slot() -> None:
    ledger = JoinLedger(max_joining=2, timeout_s=10)
    assert ledger.enter("a", 0.0) and ledger.enter("b", 0.0)
    assert not ledger.enter("c", 1.0)
    assert ledger.joining(1.0) == 2
    assert ledger.leave("a")
    assert ledger.enter("c", 1.0)
    assert not ledger.leave("a")  # given back once


def test_entering_twice_holds_one_slot() -> None:
    ledger = JoinLedger(max_joining=1, timeout_s=10)
    assert ledger.enter("a", 0.0) and ledger.enter("a", 0.5)
    assert ledger.joining(0.5) == 1


def test_a_slot_expires_after_the_timeout() -> None:
    ledger = JoinLedger(max_joining=1, timeout_s=10)
    assert ledger.enter("a", 0.0)
    assert ledger.next_expiry() == 10.0
    assert not ledger.enter("b", 9.99)
    assert ledger.enter("b", 10.0)  # a's client never connected: its slot is free again
    assert not ledger.leave("a")


def test_a_renamed_slot_keeps_its_expiry() -> None:
    ledger = JoinLedger(max_joining=1, timeout_s=10)
    ledger.enter("offer-1", 0.0)
    ledger.rename("offer-1", "session")
    ledger.rename("missing", "other")  # nothing to rename: nothing happens
    assert ledger.joining(5.0) == 1 and ledger.next_expiry() == 10.0
    assert ledger.leave("session") and ledger.joining(5.0) == 0 and ledger.next_expiry() is None


def test_no_limit_when_zero() -> None:
    ledger = JoinLedger(max_joining=0, timeout_s=1)
    assert all(ledger.enter(str(i), 0.0) for i in range(1000))


@pytest.mark.parametrize(("max_joining", "timeout_s"), [(-1, 1.0), (1, 0.0), (1, -1.0)])
def test_bad_ledger_settings_are_refused(max_joining: int, timeout_s: float) -> None:
    with pytest.raises(ValueError):
        JoinLedger(max_joining, timeout_s)
