"""bench/overload.py's verdicts: what counts as the publisher or the viewers watching being harmed."""

from __future__ import annotations

from bench.overload import harmed, publisher_figures, viewer_figures


def viewer(frames: int, expected: float = 150.0, connected: bool = True, lost: int = 0) -> dict[str, object]:
    return {
        "frames": frames,
        "expected": expected,
        "window": 5.0,
        "packets": 1000,
        "lost": lost,
        "connected": connected,
    }


def test_viewers_at_30_fps_without_loss_are_unharmed() -> None:
    figures = viewer_figures([viewer(150), viewer(151)])
    assert figures["n"] == 2 and figures["dropped"] == 0 and figures["loss"] == 0.0
    assert figures["fps"] == 30.1
    assert harmed("existing", figures) == []


def test_slow_lossy_or_dropped_viewers_are_harmed() -> None:
    figures = viewer_figures([viewer(130), viewer(150, connected=False, lost=10)])
    assert figures["dropped"] == 1
    assert figures["packet_loss"] == 10 / 2010
    reasons = harmed("existing", figures)
    assert reasons == ["existing: 28.0 fps", "existing: loss 6.67%", "existing: 1 dropped"]


def test_no_viewer_at_all_is_total_loss() -> None:
    figures = viewer_figures([])
    assert figures["fps"] == 0.0 and figures["loss"] == 1.0
    assert len(harmed("existing", figures)) == 2


def test_the_publisher_is_judged_by_what_it_sent_and_what_the_server_lost() -> None:
    fine = publisher_figures({"window": 5.0, "frames": 150, "sent": 1000, "lost": 9})
    assert fine == {"fps": 30.0, "loss": 0.009, "sent": 1000, "lost": 9}
    assert harmed("publisher", fine) == []
    lossy = publisher_figures({"window": 5.0, "frames": 150, "sent": 1000, "lost": 10})
    assert harmed("publisher", lossy) == ["publisher: loss 1.00%"]
    stopped = publisher_figures({"window": 5.0, "frames": 0, "sent": 0, "lost": 0})
    assert harmed("publisher", stopped) == ["publisher: 0.0 fps"]
