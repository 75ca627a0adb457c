"""``nodedrop audit``'s report (the command line's, over core.replay) on histories made by the
scheduler core: no servers."""

from __future__ import annotations

import io
import json

import msgspec

from nodedrop.cli.audit import AuditRequest, report
from nodedrop.cli.main import build_parser
from nodedrop.contracts.events import Event, ExecutionStarted, NodeFailureHandled, NodeSkipped

from .harness import Sim, n, wf
from .test_replay import lost_then_moot


def history() -> list[tuple[int, Event]]:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"),
             n("a", retry={"max_attempts": 2, "initial_interval_ms": 40}),
             n("check", "if", parameters={"condition": True}), n("no")],
            [("start", "a"), ("a", "check"), ("check", "no", "false")],
        )
    )  # fmt: skip
    sim.request()
    sim.succeed("start")
    sim.fail("a", "HttpServerError")
    sim.advance(40)
    sim.start("a")
    sim.advance(25)
    sim.succeed("a")
    sim.succeed("check", {"true": [{}]})
    return list(enumerate(sim.log, start=1))


def test_the_timeline_and_node_summary_say_what_happened() -> None:
    out = io.StringIO()
    code = report(AuditRequest("ex1"), history(), out)
    text = out.getvalue()
    assert code == 0
    assert "NodeRetryScheduled       a#1                  next attempt in 40 ms" in text
    assert "+0.040s" in text
    lines = {line.split()[0]: line for line in text.split("nodes:")[1].splitlines() if line}
    assert "succeeded" in lines["a"]
    assert "attempts 2" in lines["a"]
    assert "25 ms" in lines["a"]  # from the second attempt's NodeStarted to its result
    assert "#1 HttpServerError: a failed" in lines["a"]
    assert "skipped (no_input)" in lines["no"]
    assert "verified" not in text  # only with --verify


def test_verify_passes_then_names_an_altered_decision_with_exit_1() -> None:
    out = io.StringIO()
    assert report(AuditRequest("ex1", verify=True), history(), out) == 0
    assert "verified: 9 decisions match" in out.getvalue()

    events = history()
    at = next(i for i, (_, e) in enumerate(events) if isinstance(e, NodeSkipped))
    seq, skipped = events[at]
    events[at] = (seq, msgspec.structs.replace(skipped, reason="cancelled"))
    out = io.StringIO()
    assert report(AuditRequest("ex1", verify=True), events, out) == 1
    assert (
        f"seq {seq}: NodeSkipped no: changed: reason: expected 'no_input', recorded 'cancelled'"
        in out.getvalue()
    )


def test_json_carries_the_events_nodes_and_verification() -> None:
    out = io.StringIO()
    assert report(AuditRequest("ex1", verify=True, as_json=True), history(), out) == 0
    body = json.loads(out.getvalue())
    assert body["execution_id"] == "ex1"
    assert body["events"][0]["type"] == "ExecutionRequested"
    assert body["nodes"]["a"]["attempts"] == 2
    assert body["verification"] == {
        "ok": True, "matched": 9, "finished": True, "differences": [], "awaiting": [],
        "lost": [], "outcomes_recorded": True,
    }  # fmt: skip


def test_a_history_recorded_before_outcomes_verifies_and_says_so() -> None:
    """The same history as an older scheduler recorded it: no NodeFailureHandled, a v1 start.
    Today's core decides the outcome too; it is not compared, and the report says so."""
    old = [
        (seq, msgspec.structs.replace(e, v=1) if isinstance(e, ExecutionStarted) else e)
        for seq, e in history()
        if not isinstance(e, NodeFailureHandled)
    ]
    out = io.StringIO()
    assert report(AuditRequest("ex1", verify=True), old, out) == 0
    text = out.getvalue()
    assert "verified: 8 decisions match" in text
    assert "recorded before the scheduler recorded failure outcomes" in text
    out = io.StringIO()
    assert report(AuditRequest("ex1", verify=True), history(), out) == 0
    assert "recorded before" not in out.getvalue()


def test_a_decision_lost_with_a_publish_and_moot_is_named_but_verifies() -> None:
    live = lost_then_moot()
    out = io.StringIO()
    assert report(AuditRequest("ex", verify=True), live.history(), out) == 0
    text = out.getvalue()
    assert "verified: " in text
    assert "lost with a publish, then moot (or removed from the stream): NodeFailed g#1" in text
    body = io.StringIO()
    assert report(AuditRequest("ex", verify=True, as_json=True), live.history(), body) == 0
    assert json.loads(body.getvalue())["verification"]["lost"] == ["NodeFailed g#1"]


def test_an_unknown_execution_exits_2() -> None:
    out = io.StringIO()
    assert report(AuditRequest("nope", verify=True), [], out) == 2
    assert out.getvalue() == ""


def test_the_command_line_parses_audit() -> None:
    args = build_parser().parse_args(["audit", "ex1", "--verify", "--json"])
    assert (args.command, args.execution_id, args.verify, args.json) == ("audit", "ex1", True, True)
