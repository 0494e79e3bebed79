"""`bench load`'s request timeline: which requests overlapped one of the app's switches (newsrec/follow.py)."""

from __future__ import annotations

import json

from newsrec.bench.load import read_switches, switch_summary


def test_switches_are_put_on_the_phase_clock_and_requests_that_overlap_one_are_told_apart(tmp_path):
    wall_zero = 1_000_000.0
    log = tmp_path / "switches.jsonl"
    events = [  # as NEWSREC_SWITCH_LOG holds them: wall-clock seconds, written in the order the switches ended
        {"kind": "reload", "started": wall_zero + 10.0, "ended": wall_zero + 12.0, "cpu_s": 0.5, "phases_s": {}},
        {"kind": "reopen", "started": wall_zero + 3.0, "ended": wall_zero + 3.5, "cpu_s": 0.1, "phases_s": {}},
    ]
    log.write_text("".join(json.dumps(event) + "\n" for event in events))
    switches = read_switches(log, wall_zero)
    assert [(s["kind"], s["started"], s["ended"]) for s in switches] == [("reopen", 3.0, 3.5), ("reload", 10.0, 12.0)]
    timeline = [
        (0.0, 2.9, True),  # ends before the first switch
        (2.0, 3.2, True),  # overlaps the reopen: 1.2 s
        (11.0, 19.0, True),  # starts inside the reload: 8 s
        (12.5, 13.0, True),  # after both
        (9.0, 13.0, False),  # failed: not a latency
    ]
    summary = switch_summary(timeline, switches)
    assert summary["count"] == 2 and summary["by_kind"] == {"reload": 1, "reopen": 1}
    assert summary["seconds"] == 2.5 and summary["cpu_s"] == 0.6
    assert (summary["requests_overlapping"], summary["requests_not_overlapping"]) == (2, 2)
    assert 7.5 < summary["p95_overlapping_s"] <= 8.0 and summary["p95_not_overlapping_s"] <= 2.9
    assert read_switches(tmp_path / "none.jsonl", wall_zero) == []  # an app that never switched
