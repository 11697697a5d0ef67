"""The drift check's statistics: labels and the shadow check judge served items, the bound is
calibrate's, a verdict tightens every gate one step (never past the limit) or only alerts, and
labels are taken once, from the key that asked, while they are fresh."""

from __future__ import annotations

import random

import pytest

from frugal.config import DriftConfig, GateConfig
from frugal.errors import InvalidInput, NotFound
from frugal.routing.cascade import CascadeRouter
from frugal.routing.confidence import drop_bound
from frugal.routing.drift import DriftEvent, DriftMonitor
from frugal.routing.gates import Gate
from frugal.types import ItemOutcome, Prediction


def cascade(threshold: str = ">= 0.8") -> CascadeRouter:
    return CascadeRouter([("small:1", Gate(GateConfig(confidence=threshold))), ("large:1", None)])


def answer(model: str, value: object) -> ItemOutcome:
    return ItemOutcome(Prediction(value, confidence=0.9), None, 0.0, None, model)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def monitor(events: list[DriftEvent], clock: Clock | None = None, **config: object) -> DriftMonitor:
    settings = {"min_items": 50, "window": 400, "max_drop": 0.05, "confidence": 0.9} | config
    return DriftMonitor("digits", DriftConfig.model_validate(settings), [cascade()],
                        events.append, clock=clock or Clock(), rng=random.Random(0))  # fmt: skip


def serve_and_label(m: DriftMonitor, n: int, wrong_every: int, *, key: str = "") -> None:
    """n one-item requests answered by the small tier; every ``wrong_every``-th label differs."""
    for i in range(n):
        m.served(f"r{i}", key, [answer("small:1", 3)])
        m.feedback(f"r{i}", key, [4 if wrong_every and i % wrong_every == wrong_every - 1 else 3])


def test_a_window_too_small_to_vouch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cannot vouch for a drop of 0\.005 at confidence "
                       r"0\.95: that takes at least 736"):  # fmt: skip
        DriftConfig(window=500)
    assert DriftConfig().items_to_vouch == 736  # calibrate's figure for half a point at 95%


def test_labels_within_the_limit_change_nothing() -> None:
    events: list[DriftEvent] = []
    m = monitor(events)
    serve_and_label(m, 300, wrong_every=100)  # 1% wrong, limit 5%
    state = m.state()
    assert events == [] and state["window"] == 300 and state["harmed"] == 3
    assert state["bound"] == pytest.approx(drop_bound(3, 0, 300, 0.9))
    assert m.thresholds() == {"small:1": 0.8}


def test_drift_past_the_limit_tightens_every_gate_one_step() -> None:
    events: list[DriftEvent] = []
    extra = cascade()  # a cascade a selection rule starts: tightened with the base one
    m = DriftMonitor("digits", DriftConfig(min_items=50, window=400, max_drop=0.05, step=0.05,
                                                confidence=0.9),
                     [cascade(), extra], events.append, clock=Clock())  # fmt: skip
    serve_and_label(m, 60, wrong_every=5)  # 20% wrong
    (event,) = events
    assert event.action == "tighten" and event.thresholds == {"small:1": (0.8, 0.85)}
    # The first verdict comes at the 59th item: the fewest whose bound could pass at all.
    assert m.config.items_to_vouch == 59
    assert event.judged == 59 and event.harmed == 11 and event.bound > 0.05
    assert m.thresholds() == {"small:1": 0.85}
    assert extra.tiers[0][1] is not None and extra.tiers[0][1].threshold == 0.85
    assert m.state()["window"] == 1  # the new threshold starts from no evidence: item 60 alone


def test_no_verdict_before_min_items() -> None:
    events: list[DriftEvent] = []
    m = monitor(events, min_items=100)
    serve_and_label(m, 99, wrong_every=2)
    assert events == []
    serve_and_label(m, 1, wrong_every=1)  # r0 again: a fresh request id, judged
    assert [e.action for e in events] == ["tighten"]


def test_the_limit_holds_and_then_says_so() -> None:
    events: list[DriftEvent] = []
    m = monitor(events, step=0.15, limit=0.9)
    for _ in range(3):
        serve_and_label(m, 60, wrong_every=2)
    assert [e.action for e in events] == ["tighten", "at_limit", "at_limit"]
    assert events[0].thresholds == {"small:1": (0.8, 0.9)}
    assert m.thresholds() == {"small:1": 0.9}


def test_alert_only_alerts_once_per_crossing() -> None:
    events: list[DriftEvent] = []
    m = monitor(events, action="alert")
    serve_and_label(m, 120, wrong_every=2)
    assert [e.action for e in events] == ["alert"]
    assert m.thresholds() == {"small:1": 0.8}


def test_the_last_tiers_answers_never_harm() -> None:
    events: list[DriftEvent] = []
    m = monitor(events)
    for i in range(200):
        m.served(f"r{i}", "", [answer("large:1", 3)])
        m.feedback(f"r{i}", "", [4])  # the last tier was wrong: the cascade lost nothing to it
    assert events == [] and m.state()["harmed"] == 0 and m.state()["window"] == 200


def test_shadow_check_judges_a_sample_by_agreement() -> None:
    events: list[DriftEvent] = []
    m = monitor(events, shadow_share=0.5)
    sampled = 0
    for i in range(200):
        ticket = m.served(f"r{i}", "", [answer("small:1", 3), answer("large:1", 5)])
        if ticket is not None:
            sampled += len(ticket.indices)
            assert ticket.indices == [0]  # only an earlier tier's answer needs the last tier
            m.shadowed(ticket, [answer("large:1", 3)])  # it agrees
    assert 60 < sampled < 140  # about half of 200
    state = m.state()
    assert state["harmed"] == 0 and state["window"] > sampled  # last-tier answers sampled too
    # An item judged by the shadow check is not judged again by its label.
    before = m.state()["window"]
    result = m.feedback("r199", "", [4, 4])
    assert m.state()["window"] - before == result["judged"] <= 2


def test_shadow_disagreement_counts_as_harm_and_tightens() -> None:
    events: list[DriftEvent] = []
    m = monitor(events, shadow_share=1.0)
    for i in range(70):
        ticket = m.served("", "", [answer("small:1", 3)])
        assert ticket is not None
        m.shadowed(ticket, [answer("large:1", 3 if i % 3 else 7)])
    assert [e.action for e in events] == ["tighten"]


def test_a_check_from_before_a_tighten_is_not_evidence_after_it() -> None:
    events: list[DriftEvent] = []
    m = monitor(events, shadow_share=1.0)
    old = m.served("", "", [answer("small:1", 3)])
    serve_and_label(m, 60, wrong_every=2)
    assert events and old is not None
    before = m.state()["window"]
    assert m.shadowed(old, [answer("large:1", 9)]) == 0 and m.state()["window"] == before


def test_labels_are_taken_once_from_the_asking_key_while_fresh() -> None:
    events: list[DriftEvent] = []
    clock = Clock()
    m = monitor(events, clock, feedback_ttl_s=60, max_pending=3)
    m.served("a", "alice", [answer("small:1", 3)])
    with pytest.raises(NotFound):
        m.feedback("a", "mallory", [3])  # another key cannot label alice's answers
    with pytest.raises(InvalidInput, match="2 labels for a request of 1 items"):
        m.feedback("a", "alice", [3, 3])
    assert m.feedback("a", "alice", [3])["judged"] == 1
    with pytest.raises(NotFound):
        m.feedback("a", "alice", [3])  # once
    m.served("b", "alice", [answer("small:1", 3)])
    clock.now += 61
    with pytest.raises(NotFound, match="60 s"):
        m.feedback("b", "alice", [3])  # too late
    for name in "cdef":
        m.served(name, "", [answer("small:1", 3)])
    with pytest.raises(NotFound):
        m.feedback("c", "", [3])  # max_pending 3: the oldest went first
    assert m.feedback("f", "", [None])["judged"] == 0  # null: the label is unknown
