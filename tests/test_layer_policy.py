"""The per-viewer temporal layer policy (pure, time passed in): down on loss or backlog, up after a clean
hold that grows when a step up fails, within the layers, one viewer's policy alone."""

from __future__ import annotations

import pytest

from liveshow.media.layers import (
    BACKLOG_DOWN,
    DOWN_HOLD,
    LOSS_CLEAN,
    LOSS_DOWN,
    MAX_UP_HOLD,
    TOP_LAYER,
    UP_HOLD,
    LayerPolicy,
)

BAD = LOSS_DOWN + 0.01
MEH = (LOSS_CLEAN + LOSS_DOWN) / 2


def test_a_new_viewer_starts_at_the_top_layer() -> None:
    assert LayerPolicy(0.0).target == TOP_LAYER


def test_loss_steps_down_one_layer_at_a_time_at_most_once_per_hold() -> None:
    policy = LayerPolicy(0.0)
    assert policy.report(1.0, BAD) == TOP_LAYER - 1
    assert policy.report(1.0 + DOWN_HOLD / 2, BAD) == TOP_LAYER - 1  # the step's effect not seen yet
    assert policy.report(1.0 + DOWN_HOLD, BAD) == TOP_LAYER - 2


def test_never_below_the_base_layer() -> None:
    policy = LayerPolicy(0.0)
    for k in range(10):
        policy.report(k * DOWN_HOLD, 1.0)
        policy.backlog(k * DOWN_HOLD + 0.5, 10 * BACKLOG_DOWN)
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
    policy = LayerPolicy(0.0)
    policy.report(0.0, BAD)
    policy.report(DOWN_HOLD, BAD)
    assert policy.target == 0
    down_at = DOWN_HOLD
    assert policy.report(down_at + UP_HOLD - 0.01, 0.0) == 0  # not clean long enough
    assert policy.report(down_at + UP_HOLD, 0.0) == 1
    # The next layer waits a clean hold of its own.
    assert policy.report(down_at + UP_HOLD + 0.5, 0.0) == 1
    assert policy.report(down_at + 2 * UP_HOLD, 0.0) == 2
    assert policy.report(down_at + 10 * UP_HOLD, 0.0) == TOP_LAYER  # never above the top


def test_moderate_loss_holds_the_layer_and_restarts_the_clean_hold() -> None:
    policy = LayerPolicy(0.0)
    policy.report(0.0, BAD)
    assert policy.report(UP_HOLD - 0.5, MEH) == TOP_LAYER - 1
    assert policy.report(UP_HOLD + 0.5, 0.0) == TOP_LAYER - 1  # clean only since UP_HOLD - 0.5
    assert policy.report(2 * UP_HOLD - 0.5, 0.0) == TOP_LAYER


def test_a_step_up_that_fails_doubles_the_hold_up_to_a_cap() -> None:
    policy = LayerPolicy(0.0)
    now = 0.0
    policy.report(now, BAD)  # down to 1
    holds = []
    for _ in range(8):
        now += policy.up_hold
        assert policy.report(now, 0.0) == TOP_LAYER  # up
        now += DOWN_HOLD  # fails at once
        assert policy.report(now, BAD) == TOP_LAYER - 1
        holds.append(policy.up_hold)
    assert holds[:3] == [UP_HOLD * 2, UP_HOLD * 4, UP_HOLD * 8]
    assert max(holds) == MAX_UP_HOLD


def test_a_step_up_that_held_halves_the_hold_back() -> None:
    policy = LayerPolicy(0.0)
    policy.report(0.0, BAD)  # 2 -> 1
    policy.report(UP_HOLD, 0.0)  # up to 2
    policy.report(UP_HOLD + DOWN_HOLD, BAD)  # failed: hold doubles
    assert policy.up_hold == 2 * UP_HOLD
    policy.report(UP_HOLD + DOWN_HOLD + DOWN_HOLD, BAD)  # 1 -> 0, no step up in between: unchanged
    assert policy.up_hold == 2 * UP_HOLD and policy.target == 0
    t = UP_HOLD + 2 * DOWN_HOLD
    t += policy.up_hold
    assert policy.report(t, 0.0) == 1
    t += policy.up_hold
    assert policy.report(t, 0.0) == 2  # the step to 1 held a full hold: halved back
    assert policy.up_hold == UP_HOLD


def test_viewers_policies_are_independent() -> None:
    narrow, clean = LayerPolicy(0.0), LayerPolicy(0.0)
    for k in range(5):
        narrow.report(k * DOWN_HOLD, 0.5)
        clean.report(k * DOWN_HOLD, 0.0)
    assert narrow.target == 0 and clean.target == TOP_LAYER


def test_a_policy_with_one_layer_stays_there() -> None:
    policy = LayerPolicy(0.0, top=0)
    assert policy.report(100.0, 0.0) == 0
    assert policy.report(200.0, 1.0) == 0
