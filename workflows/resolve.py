"""From a lifecycle and a matter definition to the matter's resolved lifecycle, and the checks
that make a broken definition a load error (with the path of the problem) rather than a stuck case.

Resolution, in order (each step is plain data in, plain data out):

1. `roles: {action: [...]}` replaces the roles of an inherited action (every transition of it).
2. `review_steps` weave steps between acceptance and the decision, by the lifecycle's `review`
   rules: each step is a state; the enter action (start_review) now leads to the first step;
   `review_pass` moves each step to the next and the last to the decision state; `review_return`
   moves each step (and the decision state) back one step; the decision actions (approve, deny)
   are taken only in the decision state; every other action that may be taken in the decision
   state (withdraw, suspend, extend, transfer, claim) may be taken in every step too.
3. `promise_kind: immediate` (即办件), by the lifecycle's `immediate` rules: acceptance decides,
   so `accept` takes the target, clock effect and effects of `approve`; the states no action can
   reach any more (accepted, in_review, suspended) and the actions only they had are pruned.
4. `drop_actions`, then `drop_states` (with every transition from or to them).
5. The result is checked: every state reachable from the initial one, no dead ends (a state
   that isn't terminal must have an action leading elsewhere), every state can still reach a
   terminal one, terminal states have no actions, every transition has a role, no two
   transitions of one action leave the same state, `@previous` only for resume.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from pydantic import ValidationError

from workflows.definitions import PREVIOUS, SAME, Lifecycle, MatterDefinition

Problem = tuple[str, str]  # (path, message)

# `@previous` is only meaningful where the case came from a state it returns to: resuming a
# suspension. Anywhere else it would make the next state depend on history the reader of the
# definition can't see.
PREVIOUS_ACTIONS = frozenset({"resume"})

ID_NUMBER = re.compile(r"(?<![0-9])[1-9][0-9]{5}(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9])")


def pydantic_problems(error: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (not in the schema)"
        elif item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        problems.append((f"{prefix}{path}", message))
    return problems


# ----------------------------------------------------------------------------- graph helpers

def _targets(actions: dict[str, Any], entries: dict[str, set[str]], state: str) -> set[str]:
    found = set()
    for action in actions.values():
        for transition in action["transitions"]:
            if state in transition["from"]:
                to = transition["to"]
                if to == SAME:
                    continue
                if to == PREVIOUS:
                    found |= entries.get(state, set())
                else:
                    found.add(to)
    return found


def _entries(actions: dict[str, Any]) -> dict[str, set[str]]:
    entries: dict[str, set[str]] = {}
    for action in actions.values():
        for transition in action["transitions"]:
            to = transition["to"]
            if not to.startswith("@"):
                for state in transition["from"]:
                    if state != to:
                        entries.setdefault(to, set()).add(state)
    return entries


def _reachable(data: dict[str, Any]) -> set[str]:
    entries = _entries(data["actions"])
    seen = {data["initial"]}
    queue = deque(seen)
    while queue:
        state = queue.popleft()
        for target in _targets(data["actions"], entries, state):
            if target not in seen and target in data["states"]:
                seen.add(target)
                queue.append(target)
    return seen


# ----------------------------------------------------------------------------- lifecycle checks

def lifecycle_problems(lifecycle: Lifecycle) -> list[Problem]:
    """Everything wrong with a lifecycle's structure, each with its path."""
    problems: list[Problem] = []
    states = lifecycle.states
    if lifecycle.initial not in states:
        problems.append(("initial", f"unknown state {lifecycle.initial!r}"))
    for name, action in lifecycle.actions.items():
        leaves: dict[str, int] = {}
        if len(set(action.needs)) != len(action.needs):
            problems.append((f"actions.{name}.needs", "listed twice"))
        for index, transition in enumerate(action.transitions):
            where = f"actions.{name}.transitions.{index}"
            for position, state in enumerate(transition.from_states):
                if state not in states:
                    problems.append((f"{where}.from.{position}", f"unknown state {state!r}"))
                elif state in leaves:
                    problems.append((f"{where}.from.{position}",
                                     f"{name!r} already leaves {state!r} (transition {leaves[state]}): ambiguous"))
                else:
                    leaves[state] = index
            if transition.to == PREVIOUS:
                if name not in PREVIOUS_ACTIONS:
                    problems.append((f"{where}.to", f"@previous is only for {sorted(PREVIOUS_ACTIONS)}, not {name!r}"))
            elif transition.to != SAME and transition.to not in states:
                problems.append((f"{where}.to", f"unknown state {transition.to!r}"))
            if not action.roles_of(transition):
                problems.append((f"actions.{name}.roles" if not action.roles else f"{where}.roles",
                                 f"action {name!r} has no role: nobody could ever take it"))
    problems.extend(_rules_problems(lifecycle))
    if problems:
        return problems  # the graph checks below assume every name resolves

    data = lifecycle.model_dump(by_alias=True)
    reachable = _reachable(data)
    for state in states:
        if state not in reachable:
            problems.append((f"states.{state}", f"unreachable: no sequence of actions leads here from {lifecycle.initial!r}"))
    entries = _entries(data["actions"])
    for state, definition in states.items():
        leaving = [name for name, action in lifecycle.actions.items() if state in action.from_states]
        moves = _targets(data["actions"], entries, state) - {state}
        if definition.terminal and leaving:
            problems.append((f"states.{state}", f"terminal, but actions leave it: {leaving}"))
        elif not definition.terminal and not moves:
            problems.append((f"states.{state}", "dead end: not terminal and no action leads elsewhere"
                             + (f" (only {leaving}, which stay)" if leaving else "")))
    terminals = {state for state, definition in states.items() if definition.terminal}
    if not terminals:
        problems.append(("states", "no terminal state: a case could never end"))
    else:
        can_end = set(terminals)
        changed = True
        while changed:
            changed = False
            for state in states:
                if state not in can_end and _targets(data["actions"], entries, state) & can_end:
                    can_end.add(state)
                    changed = True
        for state in states:
            if state in reachable and state not in can_end and not any(
                    path[0] == f"states.{state}" for path in problems):
                problems.append((f"states.{state}", "trapped: no terminal state can be reached from here"))
    return problems


def _rules_problems(lifecycle: Lifecycle) -> list[Problem]:
    problems: list[Problem] = []
    review = lifecycle.review
    if review is not None:
        if review.decision_state not in lifecycle.states:
            problems.append(("review.decision_state", f"unknown state {review.decision_state!r}"))
        for where, name in [("review.enter_action", review.enter_action),
                            *((f"review.decision_actions.{i}", n) for i, n in enumerate(review.decision_actions))]:
            if name not in lifecycle.actions:
                problems.append((where, f"unknown action {name!r}"))
        for where, generated in (("review.pass_action.name", review.pass_action),
                                 ("review.return_action.name", review.return_action)):
            if generated.name in lifecycle.actions:
                problems.append((where, f"{generated.name!r} is generated from review steps; it may not be "
                                        f"defined in actions too"))
    immediate = lifecycle.immediate
    if immediate is not None:
        for where, name in (("immediate.action", immediate.action),
                            ("immediate.decision_action", immediate.decision_action)):
            if name not in lifecycle.actions:
                problems.append((where, f"unknown action {name!r}"))
        decision = lifecycle.actions.get(immediate.decision_action)
        if decision is not None and len({t.to for t in decision.transitions}) != 1:
            problems.append(("immediate.decision_action", "must lead to exactly one state"))
    return problems


# ----------------------------------------------------------------------------- matter checks

def _strings(value: Any, path: str):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, path)
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}" if path else str(index))


def matter_problems(definition: MatterDefinition) -> list[Problem]:
    """Cross-field rules of a matter definition (the schema checks each field on its own)."""
    problems: list[Problem] = []
    d = definition
    if d.legal_days is not None and d.promised_days > d.legal_days:
        problems.append(("promised_days", f"{d.promised_days} exceeds legal_days {d.legal_days}: "
                                          f"a promise may not be longer than the law allows"))
    if d.extension_days is not None and d.legal_days is None:
        problems.append(("extension_days", "an extension of the legal limit needs legal_days"))
    if d.promise_kind == "immediate" and d.promised_days != 0:
        problems.append(("promised_days", "an immediate matter (即办件) is decided at once: promised_days must be 0"))
    if d.promise_kind == "promised" and d.promised_days < 1:
        problems.append(("promised_days", "a promised matter (承诺件) needs promised_days ≥ 1"))
    for field, items, key in (("materials", d.materials, "code"), ("review_steps", d.review_steps, "code")):
        seen: set[str] = set()
        for index, item in enumerate(items):
            value = getattr(item, key)
            if value in seen:
                problems.append((f"{field}.{index}.{key}", f"{value!r} is listed twice"))
            seen.add(value)
    for field in ("receive_levels", "drop_actions", "drop_states"):
        values = getattr(d, field)
        if len(set(values)) != len(values):
            problems.append((field, "lists a value twice"))
    for path, text in _strings(d.model_dump(mode="json", exclude={"version", "effective_from"}), ""):
        if ID_NUMBER.search(text):
            problems.append((path, "looks like a citizen ID number: personal numbers never go into matter definitions"))
    return problems


# ----------------------------------------------------------------------------- resolution

def _role_union(actions: dict[str, Any], names) -> list[str]:
    roles: dict[str, None] = {}
    for name in names:
        action = actions.get(name)
        if action is None:
            continue
        for transition in action["transitions"]:
            roles.update(dict.fromkeys(transition["roles"] or action["roles"]))
    return list(roles)


def _without_states(data: dict[str, Any], removed: set[str]) -> None:
    for name in list(data["actions"]):
        action = data["actions"][name]
        kept = []
        for transition in action["transitions"]:
            if transition["to"] in removed:
                continue
            transition["from"] = [state for state in transition["from"] if state not in removed]
            if transition["from"]:
                kept.append(transition)
        if kept:
            action["transitions"] = kept
        else:
            del data["actions"][name]
    for state in removed:
        data["states"].pop(state, None)


def resolve_lifecycle(definition: MatterDefinition, base: Lifecycle) -> tuple[Lifecycle | None, list[Problem]]:
    """The matter's own lifecycle (see the module docstring), or the problems that prevent it."""
    problems: list[Problem] = []
    data = base.model_dump(by_alias=True, mode="json")
    actions: dict[str, Any] = data["actions"]
    review = base.review
    generated = {review.pass_action.name, review.return_action.name} if review else set()

    for name, roles in definition.roles.items():
        if name in generated:
            problems.append((f"roles.{name}", f"the roles of {name!r} come from review_steps[].roles"))
        elif name not in actions:
            problems.append((f"roles.{name}", f"unknown action {name!r}; the lifecycle has {sorted(actions)}"))
        else:
            actions[name]["roles"] = list(roles)
            for transition in actions[name]["transitions"]:
                transition["roles"] = []

    if definition.review_steps:
        if review is None:
            problems.append(("review_steps", f"lifecycle {base.code!r} has no review rules"))
        elif definition.promise_kind == "immediate":
            problems.append(("review_steps", "an immediate matter (即办件) is decided at acceptance: no review steps"))
        else:
            for index, step in enumerate(definition.review_steps):
                if step.code in data["states"]:
                    problems.append((f"review_steps.{index}.code", f"{step.code!r} is already a state of the lifecycle"))
        if problems:
            return None, problems
        _weave_review_steps(data, definition, review)
        actions = data["actions"]

    if definition.promise_kind == "immediate":
        rules = base.immediate
        if rules is None:
            problems.append(("promise_kind", f"lifecycle {base.code!r} has no rules for immediate matters"))
            return None, problems
        decision = actions[rules.decision_action]
        accept = actions[rules.action]
        target = decision["transitions"][0]["to"]
        for transition in accept["transitions"]:
            transition["to"] = target
        accept["sla"] = decision["sla"]
        accept["effects"] = list(decision["effects"])
        if rules.label:
            accept["label"] = rules.label
        _without_states(data, set(data["states"]) - _reachable(data))

    for index, name in enumerate(definition.drop_actions):
        if name not in actions:
            problems.append((f"drop_actions.{index}", f"no action {name!r} in this matter's lifecycle "
                                                      f"(it has {sorted(actions)})"))
        else:
            del actions[name]
    for index, name in enumerate(definition.drop_states):
        if name not in data["states"]:
            problems.append((f"drop_states.{index}", f"no state {name!r} in this matter's lifecycle"))
        elif name == data["initial"]:
            problems.append((f"drop_states.{index}", f"{name!r} is where every case starts"))
        else:
            _without_states(data, {name})
    if problems:
        return None, problems

    data["review"] = None
    data["immediate"] = None
    try:
        lifecycle = Lifecycle.model_validate(data)
    except ValidationError as error:
        return None, pydantic_problems(error, prefix="(resolved lifecycle).")
    found = lifecycle_problems(lifecycle)
    if found:
        return None, [_blame(definition, path, message) for path, message in found]
    return lifecycle, []


def _blame(definition: MatterDefinition, path: str, message: str) -> Problem:
    """Point a problem of the resolved lifecycle at the part of the matter that caused it."""
    parts = path.split(".")
    if parts[0] == "actions" and len(parts) > 1 and parts[1] in definition.roles:
        return f"roles.{parts[1]}", message
    for field in ("drop_actions", "drop_states", "review_steps"):
        if getattr(definition, field):
            return field, f"{message} (resolved lifecycle: {path})"
    return "lifecycle", f"{message} (resolved lifecycle: {path})"


def _weave_review_steps(data: dict[str, Any], definition: MatterDefinition, review) -> None:
    actions: dict[str, Any] = data["actions"]
    steps = definition.review_steps
    codes = [step.code for step in steps]
    decision = review.decision_state

    states: dict[str, Any] = {}
    for name, state in data["states"].items():
        if name == decision:
            for step in steps:
                states[step.code] = {"label": step.label, "national_status": review.step_national_status,
                                     "clock": state["clock"], "terminal": False}
            if review.decision_label:
                state = {**state, "label": review.decision_label}
        states[name] = state
    data["states"] = states

    decision_roles = _role_union(actions, review.decision_actions)
    for name, action in actions.items():
        for transition in action["transitions"]:
            if name == review.enter_action:
                if transition["to"] == decision:
                    transition["to"] = codes[0]
            elif name not in review.decision_actions and decision in transition["from"]:
                at = transition["from"].index(decision)
                transition["from"][at:at] = [code for code in codes if code not in transition["from"]]
        if name in review.decision_actions:
            action["transitions"] = [{**transition, "from": [decision]} for transition in action["transitions"]
                                     if decision in transition["from"]]
    for name in [name for name, action in actions.items() if not action["transitions"]]:
        del actions[name]

    passes = [{"from": [code], "to": (codes[index + 1] if index + 1 < len(codes) else decision),
               "roles": list(steps[index].roles)} for index, code in enumerate(codes)]
    returns = [{"from": [codes[index]], "to": codes[index - 1], "roles": list(steps[index].roles)}
               for index in range(1, len(codes))]
    returns.append({"from": [decision], "to": codes[-1], "roles": decision_roles})
    woven: dict[str, Any] = {}
    for name, action in actions.items():
        woven[name] = action
        if name == review.enter_action:  # list the review actions where a reader expects them
            for rule, transitions in ((review.pass_action, passes), (review.return_action, returns)):
                woven[rule.name] = {"label": rule.label, "roles": [], "transitions": transitions,
                                    "needs": list(rule.needs), "sla": None, "effects": []}
    data["actions"] = woven
