"""The benchmarks' counting and verdicts (bench/tally.py): a failure is counted as what it is and never
folded into a figure, and a step is only reported as held when it did hold."""

from __future__ import annotations

from collections import Counter

from bench import tally
from bench.tally import Sighting, ViewerWindow

# ------------------------------------------------------------------ bids


def test_room_replies_other_than_a_result_or_a_rules_refusal_are_errors_by_code() -> None:
    assert tally.ws_outcome({"type": "bid.result", "dseq": 4}) == "accepted"
    assert tally.ws_outcome({"type": "error", "code": "bid_too_low"}) == "refused:bid_too_low"
    assert tally.ws_outcome({"type": "error", "code": "lot_closed"}) == "refused:lot_closed"
    assert tally.ws_outcome({"type": "error", "code": "writer_unavailable"}) == "error:writer_unavailable"
    assert tally.ws_outcome({"type": "error", "code": "rate_limited"}) == "error:rate_limited"
    assert tally.ws_outcome({"type": "something.else"}) == "error:something.else"


def test_http_answers_name_their_status_and_code() -> None:
    assert tally.http_outcome(200, {"price_cents": 1100}) == "accepted"
    assert tally.http_outcome(400, {"error": "bid_too_low"}) == "refused:bid_too_low"
    assert tally.http_outcome(409, {"error": "lot_closed"}) == "refused:lot_closed"
    assert tally.http_outcome(503, {"error": "writer_unavailable"}) == "error:http_503_writer_unavailable"
    assert tally.http_outcome(429, {"error": "rate_limited"}) == "error:http_429_rate_limited"
    assert tally.http_outcome(400, {"error": "invalid"}) == "error:http_400_invalid"
    assert tally.http_outcome(599, {}) == "error:http_599"


def test_errors_feed_neither_decisions_nor_ack_percentiles() -> None:
    rows: list[tally.BidRow] = [
        (0, 0.0, 0.010, "accepted", 1),
        (0, 0.1, 0.020, "refused:bid_too_low", 0),
        (0, 0.2, 3.000, "error:writer_unavailable", 0),
        (0, 0.3, 3.500, "error:timeout", 0),
    ]
    step = tally.bid_step(rows, 4.0, {1: 0.05})
    assert (step.offered, step.decided, step.accepted) == (4, 2, 1)
    assert step.errors == Counter({"error:writer_unavailable": 1, "error:timeout": 1})
    assert step.ack_ms == [10.0, 20.0]
    assert step.per_s == 2 / 4.0
    assert step.everyone_ms == [50.0]
    assert step.failures() == ["1 error:timeout", "1 error:writer_unavailable"]


def test_a_step_with_only_decisions_holds() -> None:
    rows: list[tally.BidRow] = [(0, 0.0, 0.01, "accepted", 1), (0, 0.5, 0.02, "refused:bid_too_low", 0)]
    assert tally.bid_step(rows, 4.0, {1: 0.02}).failures() == []


def test_a_backlog_past_twice_the_step_is_saturation() -> None:
    rows: list[tally.BidRow] = [(0, 0.0, 0.01, "accepted", 1), (0, 3.9, 4.2, "refused:bid_too_low", 0)]
    step = tally.bid_step(rows, 4.0, {1: 0.02})
    assert step.saturated and step.span_s == 3.9 + 4.2
    assert step.failures()[-1].startswith("saturated")


def test_accepted_bids_not_seen_by_every_socket_are_counted_not_left_out() -> None:
    parts = [
        (3, {1: Sighting(3, 10.0), 2: Sighting(2, 11.0), 3: Sighting(3, 12.0)}),
        (2, {1: Sighting(2, 10.5), 3: Sighting(2, 12.5)}),
    ]
    everyone, unseen, missing = tally.seen_by_everyone([1, 2, 3, 4], parts)
    assert everyone == {1: 10.5, 3: 12.5}
    # dseq 2: one socket of the first process and both of the second; dseq 4: nobody
    assert (unseen, missing) == (2, 3 + 5)


def test_unseen_accepted_bids_make_the_step_fail() -> None:
    rows: list[tally.BidRow] = [(0, 0.0, 0.01, "accepted", 1), (0, 0.5, 0.01, "accepted", 2)]
    step = tally.bid_step(rows, 4.0, {1: 0.02}, unseen={2}, missing_by_dseq={2: 3})
    assert (step.unseen, step.missing) == (1, 3)
    assert step.everyone_ms == [20.0]
    assert step.failures() == ["1 accepted bids not seen by every socket (3 deliveries)"]


# ------------------------------------------------------------------ ramps


def test_the_best_step_is_the_last_that_held_and_a_failure_below_it_is_unsound() -> None:
    assert tally.ramp_verdict([True, True, False]) == (1, True)
    assert tally.ramp_verdict([True, True, True]) == (2, True)
    assert tally.ramp_verdict([True, False, True, False]) == (2, False)
    assert tally.ramp_verdict([False, False]) == (None, False)
    assert tally.ramp_verdict([]) == (None, False)


# ------------------------------------------------------------------ relay


def test_fps_is_over_each_viewer_process_own_window() -> None:
    # 150 frames between the start and end commands, which took 5.3 s including their round trips
    fps, loss = tally.relay_step([ViewerWindow(150, 150, 5.3)], 0, 1)
    assert round(fps, 1) == 28.3
    assert tally.relay_held(loss, fps, 0.5, 0) == ["28.3 fps"]


def test_a_viewer_with_no_frame_before_the_window_still_expects_frames() -> None:
    expected = tally.viewer_expected_frames(5.0, 30, 0)
    assert expected == 149
    fps, loss = tally.relay_step(
        [ViewerWindow(150, tally.viewer_expected_frames(5.0, 30, 150), 5.0), ViewerWindow(75, expected, 5.0)],
        0,
        2,
    )
    assert round(loss, 3) == round(1 - 225 / 299, 3)
    assert tally.relay_held(loss, fps, 0.5, 0)[0].startswith("frame loss")


def test_loss_after_a_viewers_last_frame_counts() -> None:
    # frames stopped 3.3 s into a 5 s window: the RTP span says 100 of 100, the window says 149
    assert tally.viewer_expected_frames(5.0, 30, 100) == 149
    _fps, loss = tally.relay_step([ViewerWindow(100, tally.viewer_expected_frames(5.0, 30, 100), 5.0)], 0, 1)
    assert loss > 0.3


def test_failed_joins_are_lost_viewers() -> None:
    fps, loss = tally.relay_step([ViewerWindow(150, 149, 5.0)], 1, 2)
    assert loss == 0.5
    assert tally.relay_held(loss, fps, 0.5, 1) == ["1 viewers failed to join", "frame loss 50.00%"]
    assert tally.relay_step([], 2, 2) == (0.0, 1.0)


def test_the_headline_cpu_per_viewer_leaves_out_steps_that_failed() -> None:
    rows = [
        {"n": 100, "cpu_per_viewer_ms": 1.0, "failures": []},
        {"n": 200, "cpu_per_viewer_ms": 1.2, "failures": []},
        {"n": 400, "cpu_per_viewer_ms": 2.6, "failures": ["frame loss 8.00%"]},
    ]
    summary = tally.relay_summary(rows)
    assert summary == {"largest_n_ok": 200, "sound": True, "cpu_per_viewer_ms": 1.1}


def test_a_relay_ramp_with_a_failure_below_its_best_is_unsound() -> None:
    rows = [
        {"n": 100, "cpu_per_viewer_ms": 1.0, "failures": ["2 viewers failed to join"]},
        {"n": 200, "cpu_per_viewer_ms": 1.2, "failures": []},
    ]
    assert tally.relay_summary(rows)["sound"] is False


# ------------------------------------------------------------------ room


def test_room_counts_every_delivery_a_receiver_should_have_had() -> None:
    missing, failures = tally.room_failures({"reset": 19}, 0, 100, 1000, 98_000, {})
    assert missing == 2000
    assert failures == ["19 sockets failed to connect (reset)", "2000 deliveries missing of 100000"]


def test_room_holds_only_with_every_count_at_zero() -> None:
    assert tally.room_failures({}, 0, 100, 1000, 100_000, {}) == (0, [])
    assert tally.room_failures({}, 3, 100, 1000, 100_000, {})[1] == ["3 sockets closed during the run"]
    assert tally.room_failures({}, 0, 100, 1000, 100_000, {"rate_limited": 2})[1] == [
        "2 chat messages answered rate_limited"
    ]


def test_connect_failures_are_named() -> None:
    assert tally.connect_failure_kind(ConnectionResetError(104, "reset")) == "reset"
    assert tally.connect_failure_kind(ConnectionRefusedError()) == "refused"
    assert tally.connect_failure_kind(TimeoutError()) == "timeout"
    assert (
        tally.connect_failure_kind(ConnectionError("closed during handshake: ConnectionResetError(104)"))
        == "reset"
    )
    assert tally.connect_failure_kind(ConnectionError("closed during handshake: None")) == (
        "closed during handshake"
    )
    assert tally.connect_failure_kind(ConnectionError("HTTP/1.1 503 Service Unavailable\r\nx: y")) == (
        "HTTP/1.1 503 Service Unavailable"
    )


def test_percentile() -> None:
    assert tally.pct([3.0, 1.0, 2.0], 50) == 2.0
    assert tally.pct([float(i) for i in range(100)], 99) == 99.0
