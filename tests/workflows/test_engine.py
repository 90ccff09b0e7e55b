"""The engine: decisions, review steps, 即办件, @same / @previous, needs, and its invariants over
every matter of the shipped catalogue (hypothesis random walks)."""

from __future__ import annotations

import statistics
import timeit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.catalogue import default_catalogue
from workflows.definitions import ROLES
from workflows.engine import (ActionNotAvailable, Actor, Decision, InvalidPreviousState, MissingNeeds,
                              RoleNotAllowed, TransitionRejected, UnknownAction, available_actions, decide)

CLERK = Actor(frozenset({"clerk"}))
REVIEWER = Actor(frozenset({"reviewer"}))
SUPERVISOR = Actor(frozenset({"supervisor"}))
APPLICANT = Actor(frozenset({"applicant"}))
REASON = {"comment": "理由"}


def lifecycle(code: str):
    return default_catalogue().get(code).lifecycle


def walk(code: str, steps: list[tuple[str, Actor, dict]]) -> str:
    """Apply actions in order from the initial state; returns the final state."""
    lc = lifecycle(code)
    state, previous = lc.initial, None
    for action, actor, request in steps:
        decision = decide(lc, state=state, action=action, actor=actor, request=request, previous_state=previous)
        if decision.to_state != state:
            previous, state = state, decision.to_state
    return state


# ----------------------------------------------------------------------------- the standard path

def test_standard_path_with_clock_and_effects():
    lc = lifecycle("residence-certificate")
    accept = decide(lc, state="submitted", action="accept", actor=CLERK)
    assert accept == Decision("accept", "submitted", "accepted", "start", ())
    approve = decide(lc, state="in_review", action="approve", actor=CLERK)
    assert (approve.to_state, approve.sla, approve.effects) == ("approved", "stop", ("issue_certificate",))
    assert walk("residence-certificate", [("accept", CLERK, {}), ("start_review", CLERK, {}),
                                          ("approve", CLERK, {}), ("complete", CLERK, {}),
                                          ("deliver", CLERK, {})]) == "delivered"


def test_checks_come_in_the_contract_order_role_needs_state():
    lc = lifecycle("residence-certificate")
    with pytest.raises(UnknownAction):
        decide(lc, state="submitted", action="escalate", actor=CLERK)  # the SLA sweep escalates, not an action
    with pytest.raises(RoleNotAllowed) as refused:
        decide(lc, state="delivered", action="refuse", actor=APPLICANT)  # role first, even in the wrong state
    assert set(refused.value.roles) == {"clerk", "supervisor"}
    with pytest.raises(MissingNeeds) as missing:
        decide(lc, state="delivered", action="refuse", actor=CLERK)  # then needs
    assert missing.value.missing == ("comment",)
    with pytest.raises(ActionNotAvailable):
        decide(lc, state="delivered", action="refuse", actor=CLERK, request=REASON)  # then the state


def test_out_of_order_actions_are_refused():
    lc = lifecycle("residence-certificate")
    for state, action, actor in [("submitted", "approve", CLERK), ("submitted", "complete", CLERK),
                                 ("accepted", "supplement", APPLICANT), ("approved", "withdraw", APPLICANT),
                                 ("submitted", "resume", CLERK), ("completed", "approve", CLERK)]:
        with pytest.raises(ActionNotAvailable):
            decide(lc, state=state, action=action, actor=actor, request=REASON)


def test_needs_are_checked_for_presence_and_shape():
    lc = lifecycle("residence-certificate")
    with pytest.raises(MissingNeeds) as blank:
        decide(lc, state="submitted", action="request_correction", actor=CLERK, request={"comment": "  ", "items": []})
    assert blank.value.missing == ("comment", "items") and blank.value.invalid == ()
    with pytest.raises(MissingNeeds) as wrong:
        decide(lc, state="submitted", action="request_correction", actor=CLERK,
               request={"comment": "缺材料", "items": "居住证明"})
    assert wrong.value.missing == ("items",) and wrong.value.invalid == ("items",)
    decision = decide(lc, state="submitted", action="request_correction", actor=CLERK,
                      request={"comment": "缺材料", "items": ["居住情况佐证材料"]})
    assert (decision.to_state, decision.sla) == ("correcting", None)  # before acceptance: no clock yet
    for days in (0, -1, 1.5, True, "3"):
        with pytest.raises(MissingNeeds) as bad:
            decide(lc, state="in_review", action="extend", actor=SUPERVISOR, request={"comment": "复杂", "days": days})
        assert bad.value.invalid == ("days",)


def test_supplement_returns_to_submitted_without_touching_the_clock():
    decision = decide(lifecycle("residence-certificate"), state="correcting", action="supplement", actor=APPLICANT)
    assert (decision.to_state, decision.sla) == ("submitted", None)


# ----------------------------------------------------------------------------- @same and @previous

def test_extend_transfer_and_claim_keep_the_state():
    lc = lifecycle("residence-certificate")
    extend = decide(lc, state="in_review", action="extend", actor=SUPERVISOR, request={"comment": "情况复杂", "days": 3})
    assert (extend.to_state, extend.sla) == ("in_review", "extend")
    assert decide(lc, state="submitted", action="transfer", actor=SUPERVISOR, request=REASON).to_state == "submitted"
    assert decide(lc, state="accepted", action="claim", actor=CLERK).to_state == "accepted"
    with pytest.raises(RoleNotAllowed):
        decide(lc, state="in_review", action="extend", actor=CLERK, request={"comment": "x", "days": 3})
    with pytest.raises(RoleNotAllowed):
        decide(lc, state="submitted", action="transfer", actor=CLERK, request=REASON)


def test_suspend_and_resume_to_the_state_before():
    lc = lifecycle("minimum-living-allowance")
    suspend = decide(lc, state="second_review", action="suspend", actor=SUPERVISOR,
                     request={"comment": "入户核查", "max_days": 10})
    assert (suspend.to_state, suspend.sla) == ("suspended", "pause")
    with pytest.raises(MissingNeeds) as no_limit:
        decide(lc, state="in_review", action="suspend", actor=SUPERVISOR, request=REASON)
    assert no_limit.value.missing == ("max_days",)
    for previous in ("accepted", "first_review", "second_review", "in_review"):
        resume = decide(lc, state="suspended", action="resume", actor=SUPERVISOR, previous_state=previous)
        assert (resume.to_state, resume.sla) == (previous, "resume")
    for previous in (None, "submitted", "approved", "nowhere"):
        with pytest.raises(InvalidPreviousState):
            decide(lc, state="suspended", action="resume", actor=SUPERVISOR, previous_state=previous)


# ----------------------------------------------------------------------------- review steps

def test_review_steps_run_in_order_with_their_roles():
    code = "minimum-living-allowance"
    lc = lifecycle(code)
    assert list(lc.states)[:6] == ["submitted", "correcting", "accepted", "first_review", "second_review", "in_review"]
    assert lc.states["first_review"].label == "初审" and lc.states["in_review"].label == "待决定"
    path = [("accept", CLERK, {}), ("start_review", CLERK, {}), ("review_pass", REVIEWER, {}),
            ("review_pass", SUPERVISOR, {})]
    assert walk(code, path[:2]) == "first_review"
    assert walk(code, path[:3]) == "second_review"
    assert walk(code, path) == "in_review"
    assert walk(code, [*path, ("approve", SUPERVISOR, {})]) == "approved"

    with pytest.raises(RoleNotAllowed) as wrong_step_role:  # 复审 is the supervisor's
        decide(lc, state="second_review", action="review_pass", actor=REVIEWER)
    assert wrong_step_role.value.roles == ("supervisor",)
    with pytest.raises(RoleNotAllowed):  # the decision is the supervisor's (roles: {approve: [supervisor]})
        decide(lc, state="in_review", action="approve", actor=REVIEWER)
    for state in ("accepted", "first_review", "second_review"):  # no decision before every step passed
        with pytest.raises(ActionNotAvailable):
            decide(lc, state=state, action="approve", actor=SUPERVISOR)


def test_review_return_goes_back_one_step_with_a_reason():
    lc = lifecycle("minimum-living-allowance")
    with pytest.raises(MissingNeeds):
        decide(lc, state="second_review", action="review_return", actor=SUPERVISOR)
    assert decide(lc, state="second_review", action="review_return", actor=SUPERVISOR,
                  request=REASON).to_state == "first_review"
    assert decide(lc, state="in_review", action="review_return", actor=SUPERVISOR,
                  request=REASON).to_state == "second_review"
    with pytest.raises(ActionNotAvailable):  # the first step has no step before it
        decide(lc, state="first_review", action="review_return", actor=SUPERVISOR, request=REASON)
    with pytest.raises(RoleNotAllowed):  # the 初审 reviewer never returns a case: nobody is before them
        decide(lc, state="first_review", action="review_return", actor=REVIEWER, request=REASON)


def test_actions_of_the_review_stage_are_available_in_every_step():
    lc = lifecycle("rural-homestead-approval")
    for state in ("village_review", "town_review", "in_review"):
        assert decide(lc, state=state, action="withdraw", actor=APPLICANT).to_state == "withdrawn"
        assert decide(lc, state=state, action="suspend", actor=SUPERVISOR,
                      request={"comment": "现场踏勘", "max_days": 5}).to_state == "suspended"
    assert "extend" not in lc.actions  # dropped by the matter: no legal extension
    names = [name for name, _ in available_actions(lc, state="village_review", actor=Actor(frozenset({"clerk"})))]
    assert names == ["review_pass", "suspend", "claim"]


def test_a_matter_without_review_steps_has_no_review_actions():
    lc = lifecycle("residence-certificate")
    assert "review_pass" not in lc.actions and "review_return" not in lc.actions
    with pytest.raises(UnknownAction):
        decide(lc, state="in_review", action="review_pass", actor=REVIEWER)


# ----------------------------------------------------------------------------- 即办件

@pytest.mark.parametrize("code", sorted(code for code, matter in default_catalogue().matters.items()
                                        if matter.definition.promise_kind == "immediate"))
def test_immediate_matters_are_decided_at_acceptance(code):
    lc = lifecycle(code)
    matter = default_catalogue().get(code)
    accept = decide(lc, state="submitted", action="accept", actor=CLERK)
    assert (accept.to_state, accept.sla) == ("approved", "stop")
    assert accept.effects == (("issue_certificate",))
    assert not {"accepted", "in_review", "suspended"} & set(lc.states)
    assert not {"start_review", "approve", "deny", "suspend", "resume", "extend"} & set(lc.actions)
    assert matter.definition.promised_days == 0
    assert walk(code, [("accept", CLERK, {}), ("complete", CLERK, {}), ("deliver", CLERK, {})]) == "delivered"


def test_available_actions_follow_state_and_role():
    lc = lifecycle("residence-certificate")
    assert [name for name, _ in available_actions(lc, state="submitted", actor=CLERK)] == [
        "accept", "refuse", "request_correction", "claim"]
    assert [name for name, _ in available_actions(lc, state="submitted", actor=APPLICANT)] == ["withdraw"]
    assert available_actions(lc, state="delivered", actor=Actor(frozenset(ROLES))) == []


# ----------------------------------------------------------------------------- invariants

MATTERS = sorted(default_catalogue().matters)
ACTIONS = sorted({name for matter in default_catalogue().matters.values() for name in matter.lifecycle.actions}
                 | {"escalate", "approve_all", ""})
REQUESTS = st.fixed_dictionaries({}, optional={
    "comment": st.sampled_from([None, "", "理由", 3]),
    "items": st.sampled_from([None, [], ["身份证"], "身份证"]),
    "days": st.sampled_from([None, 0, 1, 5, True]),
    "max_days": st.sampled_from([None, 0, 10]),
})


@pytest.mark.parametrize("code", MATTERS)
def test_every_reachable_open_state_has_a_way_on(code):
    lc = lifecycle(code)
    reachable, frontier = {lc.initial}, [lc.initial]
    while frontier:
        state = frontier.pop()
        for action in lc.actions:
            for target in lc.targets(action, state):
                if target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
    assert reachable == set(lc.states)
    for state, definition in lc.states.items():
        moves = {target for action in lc.actions for target in lc.targets(action, state)} - {state}
        assert bool(moves) != definition.terminal, state


@pytest.mark.parametrize("code", MATTERS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_walks_keep_the_invariants(code, data):
    lc = lifecycle(code)
    state, previous = lc.initial, None
    for _ in range(data.draw(st.integers(min_value=1, max_value=40))):
        action = data.draw(st.sampled_from(ACTIONS))
        roles = frozenset(data.draw(st.sets(st.sampled_from(sorted(ROLES)), max_size=3)))
        request = data.draw(REQUESTS)
        try:
            decision = decide(lc, state=state, action=action, actor=Actor(roles), request=request,
                              previous_state=previous)
        except TransitionRejected as refusal:
            definition = lc.actions.get(action)
            if definition is not None and roles.isdisjoint(definition.all_roles):
                assert isinstance(refusal, RoleNotAllowed)
            if lc.states[state].terminal:
                assert not isinstance(refusal, InvalidPreviousState)
            continue
        definition = lc.actions[action]
        assert decision.to_state in lc.states  # never a state outside the lifecycle
        assert decision.from_state == state
        assert not roles.isdisjoint(definition.all_roles)  # a role never listed is always refused
        assert not lc.states[state].terminal  # nothing happens after the end
        assert (decision.sla, decision.effects) == (definition.sla, definition.effects)
        assert decision.to_state in lc.targets(action, state)
        if decision.to_state != state:
            previous, state = state, decision.to_state


def test_one_decision_takes_well_under_100_microseconds():
    lc = lifecycle("minimum-living-allowance")

    def call():
        return decide(lc, state="second_review", action="review_pass", actor=SUPERVISOR, request={"comment": None})

    per_call = [total / 2000 * 1e6 for total in timeit.Timer(call).repeat(repeat=7, number=2000)]
    assert statistics.median(per_call) < 100, per_call
