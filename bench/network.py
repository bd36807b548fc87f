"""Viewers on lossy and narrow links, with the relay's network features on and off in the same run.

One show per mode, published by headless Chromium (VP8, temporal layers L1T3, ``--publish-kbit``),
watched at once by aiortc viewer processes (bench/netviewer.py):
  loss   on loopback, each dropping a share of its incoming video RTP before its receiver sees it
         (bench/lossy.py), so its NACKs are real: 0 (the reference), 1, 2, 5 and 10 %
  link   each in a network namespace behind a veth shaped by tbf (bench/netns.py): 3 Mbit, 1 Mbit and
         600 kbit/s, with a queue of ``--queue-ms`` that drops what overflows it
Modes: the server as configured by default (``on``), then with LIVESHOW_RELAY_RTX=false and
LIVESHOW_RELAY_LAYERS=false (``off``) where this code base has those settings; where it lacks them the
``off`` mode is not run, and the output says so.

For every viewer, over the same window: frames decoded (and the share of the reference's), frame rate,
longest freeze, RTX packets it received, packets it dropped, NACKs it sent again, and for each link the
packets its queue sent and dropped; for each mode the server's NACK/RTX counters and CPU seconds.
Targets (``on`` mode only; ``off`` is reported for comparison): the publisher sends at least 28 fps
(Chromium slows it when the machine runs short of CPU: then nothing else can be judged); the reference
viewer, and a viewer behind a link that carries the whole stream, decode at least 95 % of the frames
the publisher sent in the window; at up to 5 % loss a viewer decodes at least 95 % of the reference's
frames; behind a narrower link a viewer keeps at least 10 fps; behind any link, no freeze over 1 s.
Exits 1 when a target was missed or a viewer failed.

    .venv/bin/python bench/network.py            # every step, both modes: about 2 minutes
    .venv/bin/python bench/network.py --short    # 0 and 5 % loss, 600 kbit (tests/test_network_bench.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import chromium, netns
from bench.netns import NarrowLink
from bench.netserver import Server, relay_settings
from bench.netviewer import ViewerProcess
from bench.playback import Playback, playback

LOSSES = [0.0, 0.01, 0.02, 0.05, 0.10]
LINKS_KBIT = [3000, 1000, 600]
FULL_FPS = 28.0  # the publisher must send "30 fps", less what a window's edges can cost
NARROW_FPS = 10.0
MAX_FREEZE_S = 1.0
SHARE = 0.95  # of the frames a viewer is to decode
LOSS_TARGET_UP_TO = 0.05
OFF_ENV = {"LIVESHOW_RELAY_RTX": "false", "LIVESHOW_RELAY_LAYERS": "false"}


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    loss: float = 0.0
    link_kbit: int = 0  # 0: loopback


@dataclasses.dataclass(frozen=True)
class Seen:
    step: Step
    played: Playback
    report: dict[str, Any]
    link_sent: int = 0
    link_dropped: int = 0


def carries_all(step: Step, publish_kbit: int) -> bool:
    """A link wide enough for the whole stream and its resends."""
    return step.link_kbit > 1.5 * publish_kbit


def target(step: Step, publish_kbit: int) -> str:
    """What ``step`` must hold with the features on (pure). Full-rate steps are judged against the
    frames the publisher sent in the same window, so a publisher that Chromium slowed is not counted
    against the relay (the run fails on that separately)."""
    if step.link_kbit:
        rate = (
            f">= {SHARE:.0%} of the publisher's frames"
            if carries_all(step, publish_kbit)
            else f">= {NARROW_FPS:g} fps"
        )
        return f"{rate}, no freeze over {MAX_FREEZE_S:g} s"
    if step.loss == 0:
        return f">= {SHARE:.0%} of the publisher's frames"
    if step.loss <= LOSS_TARGET_UP_TO:
        return f">= {SHARE:.0%} of the reference's frames"
    return ""


def held(step: Step, seen: Seen, reference: Seen, sent_frames: int, publish_kbit: int) -> bool | None:
    """Whether ``seen`` met ``target(step)``; None where the step has none (pure)."""
    if not target(step, publish_kbit):
        return None
    frames, freeze = seen.played.frames, seen.played.longest_freeze
    if step.link_kbit:
        enough = (
            frames >= SHARE * sent_frames
            if carries_all(step, publish_kbit)
            else seen.played.fps >= NARROW_FPS
        )
        return enough and freeze <= MAX_FREEZE_S
    if step.loss == 0:
        return frames >= SHARE * sent_frames
    return frames >= SHARE * reference.played.frames


def run_mode(
    pw: Any,
    label: str,
    env: dict[str, str],
    steps: list[Step],
    links: dict[int, NarrowLink],
    args: argparse.Namespace,
) -> tuple[list[Seen], dict[str, Any]]:
    server = Server(["127.0.0.1", *(link.host_address for link in links.values())], env)
    viewers: dict[Step, ViewerProcess] = {}
    browser = chromium.launch(pw)
    try:
        context = browser.new_context()
        context.grant_permissions(["camera", "microphone"])
        page = context.new_page()
        page.goto(server.url() + "/healthz")
        chromium.publish(page, server.whip(), server.key, "L1T3", args.publish_kbit, args.publish_kbit)
        for i, step in enumerate(steps):
            if step.link_kbit:
                link = links[step.link_kbit]
                argv = link.exec_argv(ViewerProcess.argv(server.whep(link.host_address)))
            else:
                argv = ViewerProcess.argv(server.whep(), loss=step.loss, seed=100 + i)
            viewers[step] = ViewerProcess(f"{label} {step.name}", argv)
        for viewer in viewers.values():
            viewer.wait_playing()
        time.sleep(args.settle)  # measured from here: the relay has had time to judge each link
        sent_before, cpu_before, start = chromium.sent(page), server.cpu_seconds(), time.monotonic()
        shaped_before = {kbit: link.shaper() for kbit, link in links.items()}
        time.sleep(args.window)
        sent_after, cpu_after, end = chromium.sent(page), server.cpu_seconds(), time.monotonic()
        shaped_after = {kbit: link.shaper() for kbit, link in links.items()}
        reports = {step: viewer.report() for step, viewer in viewers.items()}
        counters = {**server.metrics("liveshow_rtx"), **server.metrics("liveshow_relay_layer")}
    finally:
        browser.close()
        for viewer in viewers.values():
            viewer.close()
        server.stop()
    seen = []
    for step, report in reports.items():
        kbit = step.link_kbit
        sent = shaped_after[kbit].sent_packets - shaped_before[kbit].sent_packets if kbit else 0
        dropped = shaped_after[kbit].dropped - shaped_before[kbit].dropped if kbit else 0
        seen.append(Seen(step, playback(report["video_times"], start, end), report, sent, dropped))
    window = end - start
    totals = {
        "window_s": window,
        "publisher_frames": sent_after["frames"] - sent_before["frames"],
        "publisher_fps": (sent_after["frames"] - sent_before["frames"]) / window,
        "publisher_kbit": (sent_after["bytes"] - sent_before["bytes"]) * 8 / window / 1000,
        "publisher_mode": sent_after.get("mode", ""),
        # Chromium lowers its rate or size when it runs short of CPU or bandwidth: say which.
        "publisher_limit": f"{sent_after.get('width')}x{sent_after.get('height')}, "
        f"limited by {sent_after.get('limitation') or 'nothing'}",
        "server_cpu_s": cpu_after - cpu_before,
        **{name.removeprefix("liveshow_rtx_"): value for name, value in counters.items()},
    }
    return seen, totals


def print_mode(label: str, seen: list[Seen], totals: dict[str, Any], publish_kbit: int) -> list[str]:
    """Prints the mode's table; returns the targets it missed."""
    t = totals
    print(
        f"\n[{label}] publisher {t['publisher_mode']} {t['publisher_fps']:.1f} fps {t['publisher_kbit']:.0f} "
        f"kbit/s ({t['publisher_limit']}) over {t['window_s']:.1f} s; server CPU {t['server_cpu_s']:.2f} s; "
        f"server NACKed {t.get('nacked_packets_total', 0):.0f}, resent {t.get('packets_total', 0):.0f}, "
        f"gone from cache {t.get('missing_packets_total', 0):.0f}, "
        f"refused {t.get('refused_packets_total', 0):.0f}"
    )
    layers = {
        k.removeprefix("liveshow_relay_layer_"): v
        for k, v in t.items()
        if k.startswith("liveshow_relay_layer")
    }
    counted = ", ".join(f"{k} {v:.0f}" for k, v in layers.items())
    print(f"  layer filter: {counted or 'no counters (not in this server)'}")
    print(
        f"  {'viewer':<10} {'frames':>6} {'of ref':>7} {'fps':>5} {'freeze s':>8} {'rtx rx':>6} "
        f"{'dropped':>7} {'re-NACK':>7} {'link sent':>9} {'link drop':>9}  target"
    )
    reference = next(s for s in seen if s.step.loss == 0 and not s.step.link_kbit)
    missed = []
    for s in seen:
        r = s.report
        share = s.played.frames / reference.played.frames if reference.played.frames else 0.0
        wanted = target(s.step, publish_kbit)
        verdict = (
            held(s.step, s, reference, totals["publisher_frames"], publish_kbit) if label == "on" else None
        )
        mark = (
            "" if not wanted else ("held" if verdict else "MISSED") if label == "on" else "(for comparison)"
        )
        if label == "on" and wanted and not verdict:
            missed.append(f"{label} {s.step.name}: {wanted}")
        print(
            f"  {s.step.name:<10} {s.played.frames:>6} {share:>7.1%} {s.played.fps:>5.1f} "
            f"{s.played.longest_freeze:>8.2f} {r['rtx_received']:>6} {r['dropped_video']:>7} "
            f"{r['nacked_again']:>7} {s.link_sent:>9} {s.link_dropped:>9}  {wanted} {mark}".rstrip()
        )
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--short", action="store_true", help="0 and 5 %% loss and the 600 kbit link only")
    parser.add_argument(
        "--publish-kbit",
        type=int,
        default=700,
        help="the publisher's ceiling: its two lower layers (about 60 %%) and audio must fit 600 kbit/s"
        " with room for resends, or no relay can give that link 10 fps (docs/performance.md)",
    )
    parser.add_argument("--queue-ms", type=int, default=250, help="each link's queue, in ms of its rate")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds after every viewer plays")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    args = parser.parse_args()
    if args.short:
        args.window = min(args.window, 6.0)
        args.settle = min(args.settle, 3.0)
    losses = [0.0, 0.05] if args.short else LOSSES
    link_rates = [600] if args.short else LINKS_KBIT
    steps = [Step(f"loss {loss:.0%}", loss=loss) for loss in losses]
    why = netns.available()
    if why:
        print(f"links not measured: {why}")
    else:
        steps += [Step(f"{kbit} kbit", link_kbit=kbit) for kbit in link_rates]

    switches = relay_settings()
    modes: list[tuple[str, dict[str, str]]] = [("on", {})]
    if set(switches) == {"relay_rtx", "relay_layers"}:
        modes.append(("off", OFF_ENV))
        print(f"features: {switches} by default; mode off sets {OFF_ENV}")
    else:
        print(
            "features off: NOT MEASURED, this server has no LIVESHOW_RELAY_RTX / LIVESHOW_RELAY_LAYERS "
            f"settings (found {sorted(switches) or 'none'}); mode on is the server as it is"
        )
    print(
        f"publisher: Chromium, VP8 L1T3 at {args.publish_kbit} kbit/s; links: queue {args.queue_ms} ms; "
        f"window {args.window:g} s after {args.settle:g} s"
    )

    from playwright.sync_api import sync_playwright

    missed: list[str] = []
    failed: list[str] = []
    links: dict[int, NarrowLink] = {}
    try:
        for kbit in sorted({s.link_kbit for s in steps if s.link_kbit}):
            links[kbit] = NarrowLink.create(rate_kbit=kbit, queue_ms=args.queue_ms)
        with sync_playwright() as pw:
            for label, env in modes:
                try:
                    seen, totals = run_mode(pw, label, env, steps, links, args)
                except RuntimeError as exc:
                    failed.append(f"{label}: {exc}")
                    print(f"\n[{label}] FAILED: {exc}")
                    continue
                missed += print_mode(label, seen, totals, args.publish_kbit)
                if label == "on" and totals["publisher_fps"] < FULL_FPS:
                    missed.append(f"on: the publisher sent {totals['publisher_fps']:.1f} fps, not 30")
                if label == "off" and totals.get("packets_total", 0):
                    missed.append(f"off: {totals['packets_total']:.0f} packets resent with RTX off")
    finally:
        for link in links.values():
            link.close()
    for line in failed + missed:
        print("  -", line)
    verdict = "PASS" if not (failed or missed) else f"FAIL ({len(failed)} failed, {len(missed)} missed)"
    print(f"verdict: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
