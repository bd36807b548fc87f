"""The per-viewer temporal layer policy (pure, time passed in): down on congestion (loss that a step down
lowers, or backlog), not on random loss; up after a clean hold per layer that grows when that layer
fails and shrinks when it holds; within the layers, one viewer's policy alone."""

from __future__ import annotations

import pytest

from liveshow.media.layers import (
    BACKLOG_DOWN,
    DOWN_HOLD,
    FAIL_WINDOW,
    FAILED_HOLD,
    FAST_LOSS,
    FAST_PACKETS,
    FAST_WINDOW,
    LOSS_CLEAN,
    LOSS_DOWN,
    MAX_FLOOR,
    MAX_UP_HOLD,
    MIN_JUDGED_BPS,
    OVERUSE_GAP,
    OVERUSE_HOLD,
    PERSISTS,
    REMB_DOWN,
    REMB_PACKETS,
    REMB_VALID,
    TOP_LAYER,
    UP_HOLD,
    LayerPolicy,
)

BAD = LOSS_DOWN + 0.01
MEH = (LOSS_CLEAN + LOSS_DOWN) / 2
LATE = FAIL_WINDOW + 1.0  # a time after which the starting layer has held


def settled() -> LayerPolicy:
    """A policy whose starting (top) layer has held."""
    policy = LayerPolicy(0.0)
    assert policy.report(LATE, 0.0) == TOP_LAYER
    return policy


def test_a_new_viewer_starts_at_the_top_layer() -> None:
    assert LayerPolicy(0.0).target == TOP_LAYER


def test_loss_that_falls_with_each_step_steps_down_one_layer_at_a_time_at_most_once_per_hold() -> None:
    policy = LayerPolicy(0.0)
    assert policy.report(1.0, 0.5) == TOP_LAYER - 1
    assert policy.report(1.0 + DOWN_HOLD / 2, 0.5) == TOP_LAYER - 1  # the step's effect not seen yet
    assert policy.report(1.0 + DOWN_HOLD, 0.2) == TOP_LAYER - 2  # lower, still congested
    assert policy.floor == 0.0


def test_never_below_the_base_layer() -> None:
    policy = LayerPolicy(0.0)
    for k in range(10):
        policy.backlog(k * DOWN_HOLD, 10 * BACKLOG_DOWN)
    assert policy.target == 0


@pytest.mark.parametrize("loss", [0.0, LOSS_CLEAN, MEH, LOSS_DOWN])
def test_loss_at_or_under_the_threshold_does_not_step_down(loss: float) -> None:
    policy = LayerPolicy(0.0)
    assert policy.report(5.0, loss) == TOP_LAYER


def test_backlog_steps_down_only_past_its_threshold() -> None:
    policy = LayerPolicy(0.0)
    assert policy.backlog(1.0, BACKLOG_DOWN) == TOP_LAYER
    assert policy.backlog(1.0, BACKLOG_DOWN + 1) == TOP_LAYER - 1
    assert policy.backlog(1.0 + DOWN_HOLD / 2, 10 * BACKLOG_DOWN) == TOP_LAYER - 1  # within the hold


def test_steps_up_one_layer_after_a_clean_hold() -> None:
    policy = settled()
    policy.backlog(LATE, 10 * BACKLOG_DOWN)
    down_at = LATE + FAIL_WINDOW  # layer 1 held: no failure
    policy.backlog(down_at, 10 * BACKLOG_DOWN)
    assert policy.target == 0
    assert policy.report(down_at + UP_HOLD - 0.01, 0.0) == 0  # not clean long enough
    assert policy.report(down_at + UP_HOLD, 0.0) == 1
    # The next layer waits a clean hold of its own.
    assert policy.report(down_at + UP_HOLD + 0.5, 0.0) == 1
    assert policy.report(down_at + 2 * UP_HOLD, 0.0) == 2
    assert policy.report(down_at + 10 * UP_HOLD, 0.0) == TOP_LAYER  # never above the top


def test_moderate_loss_holds_the_layer_and_restarts_the_clean_hold() -> None:
    policy = settled()
    policy.backlog(LATE, 10 * BACKLOG_DOWN)
    assert policy.report(LATE + UP_HOLD - 0.5, MEH) == TOP_LAYER - 1
    assert policy.report(LATE + UP_HOLD + 0.5, 0.0) == TOP_LAYER - 1  # clean only since UP_HOLD - 0.5
    assert policy.report(LATE + 2 * UP_HOLD - 0.5, 0.0) == TOP_LAYER


def test_congestion_soon_after_the_start_is_a_failure_of_the_top_layer() -> None:
    policy = LayerPolicy(0.0)
    policy.report(FAIL_WINDOW - 0.1, 0.3)
    assert policy.target == TOP_LAYER - 1 and policy.up_hold == FAILED_HOLD
    late = settled()
    late.report(LATE, 0.3)
    assert late.target == TOP_LAYER - 1 and late.up_hold == UP_HOLD


def test_a_layer_that_fails_again_and_again_waits_longer_each_time_up_to_a_cap() -> None:
    policy = settled()
    now = LATE
    policy.report(now, 0.3)  # down to 1: the top had held, no failure
    down_at = now
    now += DOWN_HOLD
    assert policy.report(now, 0.0) == TOP_LAYER - 1  # the step lowered the loss: congestion
    holds = []
    for _ in range(8):
        now = down_at + policy.up_hold
        assert policy.report(now - 0.01, 0.0) == TOP_LAYER - 1
        assert policy.report(now, 0.0) == TOP_LAYER  # the probe
        now += 1.0
        assert policy.report(now, 0.3) == TOP_LAYER - 1  # fails within FAIL_WINDOW
        down_at = now
        now += DOWN_HOLD
        assert policy.report(now, 0.0) == TOP_LAYER - 1
        holds.append(policy.up_hold)
    assert holds[:3] == [FAILED_HOLD, 2 * FAILED_HOLD, 4 * FAILED_HOLD]
    assert max(holds) == MAX_UP_HOLD
    assert policy.holds[TOP_LAYER - 1] == UP_HOLD  # the layer below it is not held back


def test_a_layer_never_clean_for_the_fail_window_has_not_held() -> None:
    policy = settled()
    policy.backlog(LATE, 10 * BACKLOG_DOWN)  # to 1
    policy.report(LATE + UP_HOLD, 0.0)  # up to 2
    for k in range(1, 10):  # moderate loss: not congestion, not clean either
        policy.report(LATE + UP_HOLD + k, MEH)
    policy.backlog(LATE + UP_HOLD + 10, 10 * BACKLOG_DOWN)
    assert policy.target == TOP_LAYER - 1 and policy.up_hold == FAILED_HOLD


def test_a_step_down_after_the_fail_window_is_no_failure() -> None:
    policy = settled()
    policy.backlog(LATE, 10 * BACKLOG_DOWN)  # to 1
    policy.report(LATE + UP_HOLD, 0.0)  # up to 2
    policy.backlog(LATE + UP_HOLD + FAIL_WINDOW + 0.1, 10 * BACKLOG_DOWN)
    assert policy.target == TOP_LAYER - 1 and policy.up_hold == UP_HOLD


def test_a_failed_layer_that_then_holds_halves_its_hold_back() -> None:
    policy = LayerPolicy(0.0)
    policy.backlog(1.0, 10 * BACKLOG_DOWN)  # the start failed: top's hold FAILED_HOLD
    assert policy.up_hold == FAILED_HOLD
    t = 1.0 + FAILED_HOLD
    assert policy.report(t, 0.0) == TOP_LAYER
    assert policy.report(t + FAIL_WINDOW - 0.1, 0.0) == TOP_LAYER
    assert policy.holds[TOP_LAYER] == FAILED_HOLD  # not held long enough yet
    policy.report(t + FAIL_WINDOW, 0.0)
    assert policy.holds[TOP_LAYER] == FAILED_HOLD / 2
    policy.report(t + 10 * FAIL_WINDOW, 0.0)
    assert policy.holds[TOP_LAYER] == FAILED_HOLD / 2  # once per stay at the layer
    policy.backlog(t + 11 * FAIL_WINDOW, 10 * BACKLOG_DOWN)
    assert policy.up_hold == FAILED_HOLD / 2  # a held layer's late step down is no failure


def test_random_loss_that_a_step_down_does_not_lower_is_undone_and_becomes_the_floor() -> None:
    policy = LayerPolicy(0.0)
    assert policy.report(1.0, 0.11) == TOP_LAYER - 1  # looks like congestion, and the start's failure
    assert policy.report(1.0 + DOWN_HOLD - 0.01, 0.11) == TOP_LAYER - 1  # too soon to judge
    assert policy.report(1.0 + DOWN_HOLD, 0.11) == TOP_LAYER - 1  # one report is not enough...
    assert policy.report(1.0 + DOWN_HOLD + 1, 0.10) == TOP_LAYER  # ...two: the same loss one layer down
    assert policy.floor == 0.10
    assert policy.holds[TOP_LAYER] == UP_HOLD  # no failure of the top layer either
    for k in range(2, 20):  # the random loss goes on: no step down, it is RTX's job
        assert policy.report(1.0 + DOWN_HOLD + k, 0.12) == TOP_LAYER


def test_a_report_that_shows_the_step_lowered_the_loss_ends_the_judging() -> None:
    policy = settled()
    policy.report(LATE, 0.11)
    assert policy.report(LATE + DOWN_HOLD, 0.11) == TOP_LAYER - 1  # persisting, once
    assert policy.report(LATE + DOWN_HOLD + 1, 0.0) == TOP_LAYER - 1  # lowered: congestion after all
    assert policy.report(LATE + DOWN_HOLD + 2, 0.11) == TOP_LAYER - 2  # judged: loss steps down again
    assert policy.floor == 0.0


def test_loss_that_a_step_down_lowered_by_half_is_congestion() -> None:
    policy = settled()
    policy.report(LATE, 0.2)
    assert policy.report(LATE + DOWN_HOLD, 0.2 * PERSISTS - 0.01) == TOP_LAYER - 1
    assert policy.floor == 0.0


def test_loss_at_the_lower_layer_that_is_nearly_clean_is_congestion() -> None:
    policy = settled()
    policy.report(LATE, BAD)
    assert policy.report(LATE + DOWN_HOLD, LOSS_CLEAN) == TOP_LAYER - 1  # under half, but clean anyway
    assert policy.floor == 0.0


def random_loss_floor() -> LayerPolicy:
    """A policy that found 10 % random loss (back at the top layer at 4.0)."""
    policy = LayerPolicy(0.0)
    policy.report(1.0, 0.11)
    policy.report(1.0 + DOWN_HOLD, 0.10)
    policy.report(2.0 + DOWN_HOLD, 0.10)
    assert policy.floor == 0.10 and policy.target == TOP_LAYER
    return policy


def test_congestion_on_top_of_random_loss_steps_down() -> None:
    policy = random_loss_floor()
    assert policy.report(10.0, 0.10 + LOSS_DOWN) == TOP_LAYER  # not above the floor by more than LOSS_DOWN
    assert policy.report(11.0, 0.10 + BAD) == TOP_LAYER - 1
    assert policy.report(11.0 + DOWN_HOLD, 0.10) == TOP_LAYER - 1  # back to the floor: congestion
    assert policy.floor == 0.10
    # Clean above the floor: the step up waits its hold.
    assert policy.report(11.0 + DOWN_HOLD + UP_HOLD, 0.10 + LOSS_CLEAN / 2) == TOP_LAYER


@pytest.mark.parametrize(
    "before, after",
    [
        (0.13, 0.58),  # loss rose after the step: its effect not seen yet, or a storm of retransmissions
        (0.5, 0.3),  # not halved, but more than a link is ridden out with at the top
    ],
)
def test_loss_that_rose_or_is_heavy_is_never_taken_for_random_loss(before: float, after: float) -> None:
    policy = settled()
    policy.report(LATE, before)
    assert policy.report(LATE + DOWN_HOLD, after) == TOP_LAYER - 2  # congestion still: down again
    assert policy.floor == 0.0
    assert after > MAX_FLOOR or after > before


def test_a_clean_report_clears_the_floor() -> None:
    policy = random_loss_floor()
    assert policy.report(20.0, LOSS_CLEAN) == TOP_LAYER
    assert policy.floor == 0.0
    assert policy.report(21.0, 0.11) == TOP_LAYER - 1  # the same loss is congestion again until judged


def test_a_backlog_step_is_not_judged_by_loss() -> None:
    policy = settled()
    policy.backlog(LATE, 10 * BACKLOG_DOWN)
    assert policy.report(LATE + DOWN_HOLD, MEH) == TOP_LAYER - 1
    assert policy.floor == 0.0


def test_viewers_policies_are_independent() -> None:
    narrow, clean = LayerPolicy(0.0), LayerPolicy(0.0)
    for k in range(5):
        narrow.backlog(k * DOWN_HOLD, 10 * BACKLOG_DOWN)
        clean.report(k * DOWN_HOLD, 0.0)
    assert narrow.target == 0 and clean.target == TOP_LAYER


def test_a_policy_with_one_layer_stays_there() -> None:
    policy = LayerPolicy(0.0, top=0)
    assert policy.report(100.0, 0.0) == 0
    assert policy.report(200.0, 1.0) == 0
    assert policy.backlog(300.0, 10 * BACKLOG_DOWN) == 0
    assert policy.up_hold == UP_HOLD


# ---------------------------------------------------------------- the NACK signal


def heavy(packets: int = FAST_PACKETS) -> int:
    """Packets lost of ``packets`` that are just over FAST_LOSS."""
    return int(FAST_LOSS * packets) + 1


def test_heavy_first_nacks_over_a_full_window_step_down_before_any_report() -> None:
    policy = settled()
    # The window opens at the first NACK; the share is judged once FAST_PACKETS were sent since.
    assert policy.nacked(LATE, 2, 1000) == TOP_LAYER
    assert policy.nacked(LATE + 0.2, heavy() - 2, 1000 + FAST_PACKETS - 1) == TOP_LAYER  # too few yet
    assert policy.nacked(LATE + 0.3, 0, 1000 + FAST_PACKETS) == TOP_LAYER - 1
    assert policy.last_down == LATE + 0.3
    # At most once per DOWN_HOLD, as for reports.
    assert policy.nacked(LATE + 0.5, FAST_PACKETS, 1000 + 2 * FAST_PACKETS) == TOP_LAYER - 1
    later = LATE + 0.3 + DOWN_HOLD
    policy.nacked(later, FAST_PACKETS, 2000)
    assert policy.nacked(later + 0.1, 0, 2000 + FAST_PACKETS) == TOP_LAYER - 2


def test_nacks_at_or_under_the_fast_share_leave_the_layer_to_the_reports() -> None:
    policy = settled()
    lost = int(FAST_LOSS * FAST_PACKETS)  # exactly FAST_LOSS: random loss of 10 % rarely gets there
    assert policy.nacked(LATE, lost, 0) == TOP_LAYER
    assert policy.nacked(LATE + 0.5, 0, FAST_PACKETS) == TOP_LAYER


def test_a_window_that_fills_too_slowly_starts_over() -> None:
    policy = settled()
    policy.nacked(LATE, heavy(), 0)
    # Over FAST_WINDOW later: the losses counted belong to a window that is gone.
    assert policy.nacked(LATE + FAST_WINDOW + 0.1, 0, FAST_PACKETS) == TOP_LAYER
    assert policy.nacked(LATE + FAST_WINDOW + 0.2, 1, 2 * FAST_PACKETS) == TOP_LAYER


def test_the_fast_share_counts_above_the_floor_and_its_step_is_judged_like_a_reports() -> None:
    """Heavier than MAX_FLOOR above a floor, a fast step is never undone as random loss; the reports
    after it that show the loss back at the floor confirm it and keep the floor."""
    policy = random_loss_floor()
    floor = policy.floor
    start = LATE * 10
    policy.nacked(start, heavy(), 0)  # FAST_LOSS over: not FAST_LOSS over the floor
    assert policy.nacked(start + 0.2, 0, FAST_PACKETS) == TOP_LAYER
    lost = int((FAST_LOSS + floor) * FAST_PACKETS) + 1
    policy.nacked(start + 1.5, lost, 100)
    assert policy.nacked(start + 1.7, 0, 100 + FAST_PACKETS) == TOP_LAYER - 1
    assert policy.report(start + 1.7 + DOWN_HOLD, floor) == TOP_LAYER - 1
    assert policy.report(start + 2.2 + DOWN_HOLD, floor) == TOP_LAYER - 1
    assert policy.floor == floor


def test_a_fast_step_from_a_layer_that_never_held_is_its_failure() -> None:
    policy = LayerPolicy(0.0)  # the start is a probe of the top layer
    policy.nacked(0.5, heavy(), 0)
    assert policy.nacked(1.0, 0, FAST_PACKETS) == TOP_LAYER - 1
    assert policy.up_hold == FAILED_HOLD


# ---------------------------------------------------------------- the receiver's estimate (REMB)

SENT = 700_000  # bits/s of video sent to the viewer


def test_an_estimate_under_what_is_sent_makes_the_first_overflow_step_down() -> None:
    policy = settled()
    policy.estimate(LATE, REMB_DOWN * SENT - 1, SENT)  # the link's queue fills
    assert policy.target == TOP_LAYER  # the estimate alone: a busy receiver reads a stall as delay too
    lost = int(LOSS_DOWN * REMB_PACKETS) + 1  # the queue's first overflow, well under FAST_LOSS
    policy.nacked(LATE + 0.1, lost, 1000)
    assert policy.nacked(LATE + 0.2, 0, 1000 + REMB_PACKETS) == TOP_LAYER - 1


@pytest.mark.parametrize(
    "estimate, sent",
    [
        (REMB_DOWN * SENT, SENT),  # not under REMB_DOWN of what it is sent
        (SENT / 2, MIN_JUDGED_BPS - 1),  # too little sent to judge by
    ],
)
def test_an_estimate_that_does_not_say_narrow_leaves_nacks_to_the_heavy_rule(
    estimate: float, sent: float
) -> None:
    policy = settled()
    policy.estimate(LATE, estimate, sent)
    policy.nacked(LATE + 0.1, int(LOSS_DOWN * REMB_PACKETS) + 1, 1000)
    assert policy.nacked(LATE + 0.2, 0, 1000 + REMB_PACKETS) == TOP_LAYER
    assert policy.nacked(LATE + 0.3, 0, 1000 + FAST_PACKETS) == TOP_LAYER  # 15 % of 40: not heavy


def test_a_narrow_estimate_stands_for_a_while_and_a_wide_one_clears_it() -> None:
    policy = settled()
    policy.estimate(LATE, SENT / 2, SENT)
    late = LATE + REMB_VALID + 0.1  # no estimate since: the receiver's word has gone stale
    policy.nacked(late, int(LOSS_DOWN * REMB_PACKETS) + 1, 1000)
    assert policy.nacked(late + 0.1, 0, 1000 + REMB_PACKETS) == TOP_LAYER
    policy.estimate(late + 0.2, SENT / 2, SENT)
    policy.estimate(late + 0.3, SENT, SENT)  # the queue drained: the estimate is back
    policy.nacked(late + 1.5, int(LOSS_DOWN * REMB_PACKETS) + 1, 2000)
    assert policy.nacked(late + 1.6, 0, 2000 + REMB_PACKETS) == TOP_LAYER


def test_random_loss_under_loss_down_is_not_stepped_for_even_with_a_narrow_estimate() -> None:
    policy = settled()
    policy.estimate(LATE, SENT / 2, SENT)
    policy.nacked(LATE + 0.1, int(LOSS_DOWN * REMB_PACKETS), 1000)  # exactly LOSS_DOWN: 5 % in pairs
    assert policy.nacked(LATE + 0.2, 0, 1000 + REMB_PACKETS) == TOP_LAYER


def overusing(policy: LayerPolicy, start: float, seconds: float, estimate: float = SENT / 2) -> float:
    """Low estimates every 10 ms (a receiver that finds the delay growing) for ``seconds``; returns
    the time of the last."""
    now = start
    steps = round(seconds / 0.01)
    for i in range(steps + 1):
        now = start + i * 0.01
        policy.estimate(now, estimate, SENT)
    return now


def test_a_queue_that_keeps_growing_steps_down_before_it_overflows() -> None:
    policy = settled()
    overusing(policy, LATE, OVERUSE_HOLD - 0.02)
    assert policy.target == TOP_LAYER  # not for long enough yet
    last = overusing(policy, LATE + OVERUSE_HOLD - 0.01, 0.02)
    assert policy.target == TOP_LAYER - 1 and policy.last_down == pytest.approx(
        LATE + OVERUSE_HOLD, abs=0.011
    )
    # Still overusing (the queue drains only once the lower layer's rate is what arrives): at most once
    # per DOWN_HOLD, then the base layer if the lower layer overuses the link as well.
    overusing(policy, last + 0.01, DOWN_HOLD - OVERUSE_HOLD - 0.1)
    assert policy.target == TOP_LAYER - 1
    overusing(policy, last + DOWN_HOLD - OVERUSE_HOLD, OVERUSE_HOLD + 0.1)
    assert policy.target == TOP_LAYER - 2


@pytest.mark.parametrize(
    "gap, estimate",
    [
        (OVERUSE_GAP + 0.05, SENT / 2),  # low, but one per receiver report: not a growing queue
        (0.01, REMB_DOWN * SENT),  # close together, but not under REMB_DOWN of what is sent
    ],
)
def test_estimates_that_do_not_say_a_queue_is_growing_do_not_step_down(gap: float, estimate: float) -> None:
    policy = settled()
    for i in range(round(2 * OVERUSE_HOLD / gap) + 2):
        policy.estimate(LATE + i * gap, estimate, SENT)
    assert policy.target == TOP_LAYER


def test_a_stalled_receivers_burst_of_low_estimates_does_not_step_down() -> None:
    """A receiver starved of CPU reads its backlog as delay: a few low estimates at once, then one per
    half second (a trace on this machine under a CI run); the run of close ones restarts each time."""
    policy = settled()
    now = LATE
    for _ in range(4):
        overusing(policy, now, 0.03)
        now += 0.5
        policy.estimate(now, SENT / 2, SENT)
        now += 0.5
    assert policy.target == TOP_LAYER


def test_a_delay_step_is_not_judged_by_the_loss_after_it() -> None:
    policy = settled()
    overusing(policy, LATE, OVERUSE_HOLD + 0.01)
    assert policy.target == TOP_LAYER - 1
    later = LATE + OVERUSE_HOLD + DOWN_HOLD
    for i in range(3):  # moderate loss that does not fall: it would undo a loss step as random loss
        policy.report(later + i, MEH)
    assert policy.target == TOP_LAYER - 1 and policy.floor == 0.0
