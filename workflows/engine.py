"""The workflow engine: a small interpreter over a resolved Lifecycle. Pure: no I/O, no database.

Given a case's state, an action and an actor, it says whether the action is allowed, what the
next state is, what the SLA clock does and which effects follow. The lifecycle is data; nothing
here knows any state or action by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.definitions import PREVIOUS, SAME, ActionDefinition, Lifecycle


@dataclass(frozen=True)
class Actor:
    """Who is acting, as far as the engine cares: roles they hold *for this case*.

    The caller works out `applicant` (the case is theirs) and whether a staff member's
    jurisdiction covers the case; the engine only matches roles.
    """

    roles: frozenset[str]


@dataclass(frozen=True)
class Decision:
    action: str
    from_state: str
    to_state: str
    sla: str | None
    effects: tuple[str, ...]


class TransitionRejected(Exception):
    """Base of the engine's refusals; services translate them into HTTP-facing errors."""


@dataclass
class UnknownAction(TransitionRejected):
    action: str


@dataclass
class RoleNotAllowed(TransitionRejected):
    action: str
    roles: tuple[str, ...]


@dataclass
class ActionNotAvailable(TransitionRejected):
    action: str
    state: str


@dataclass
class MissingNeeds(TransitionRejected):
    """The request lacks what the action needs. `missing` lists every need not met (absent or
    unusable); `invalid` the subset that was given but unusable (e.g. `days: 0`)."""

    action: str
    missing: tuple[str, ...] = field(default_factory=tuple)
    invalid: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class InvalidPreviousState(TransitionRejected):
    """`@previous` could not be resolved: the caller gave no previous state, or one the case
    cannot have come from. A data error in the caller, not a user mistake."""

    action: str
    state: str
    previous_state: str | None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check(need: str, value: Any) -> bool | None:
    """True: met; None: absent; False: present but unusable."""
    if value is None:
        return None
    if need == "comment":
        if not isinstance(value, str):
            return False
        return True if value.strip() else None
    if need == "items":
        if not isinstance(value, (list, tuple)):
            return False
        if not value:
            return None
        return all(_filled(item) for item in value)
    if need in ("days", "max_days"):
        return _is_count(value)
    return bool(value)


def _filled(item: Any) -> bool:
    if isinstance(item, str):
        return bool(item.strip())
    return item is not None and item != {} and item != []


def unmet_needs(needs: tuple[str, ...], request: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(missing, invalid) for an action's needs: comment (non-blank text), items (a non-empty
    list), days / max_days (whole numbers ≥ 1)."""
    missing: list[str] = []
    invalid: list[str] = []
    for need in needs:
        verdict = _check(need, request.get(need))
        if verdict is not True:
            missing.append(need)
            if verdict is False:
                invalid.append(need)
    return tuple(missing), tuple(invalid)


def decide(lifecycle: Lifecycle, *, state: str, action: str, actor: Actor,
           request: Mapping[str, Any] | None = None, previous_state: str | None = None) -> Decision:
    """Decide one action. Checks in the order of the API contract: role, needs, state.

    `request` carries what the action may need: `comment`, and the payload's `items`, `days`,
    `max_days`. `previous_state` is the state the case was in before its current one; it is
    needed only where the target is `@previous` (resume after a suspension).
    """
    definition = lifecycle.actions.get(action)
    if definition is None:
        raise UnknownAction(action)
    index = lifecycle.__pydantic_private__["_compiled"]  # == lifecycle.compiled, without the property call
    compiled = index.transitions.get((action, state))
    if compiled is not None:
        if actor.roles.isdisjoint(compiled.role_set):
            raise RoleNotAllowed(action, compiled.roles)
    else:
        role_set, roles = index.action_roles[action]
        if actor.roles.isdisjoint(role_set):
            raise RoleNotAllowed(action, roles)
    if definition.needs:
        missing, invalid = unmet_needs(definition.needs, request or {})
        if missing:
            raise MissingNeeds(action, missing, invalid)
    if compiled is None:
        raise ActionNotAvailable(action, state)
    to_state = compiled.to
    if to_state == SAME:
        to_state = state
    elif to_state == PREVIOUS:
        if previous_state is None or previous_state not in index.entries.get(state, ()):
            raise InvalidPreviousState(action, state, previous_state)
        to_state = previous_state
    return Decision(action=action, from_state=state, to_state=to_state, sla=definition.sla,
                    effects=definition.effects)


def available_actions(lifecycle: Lifecycle, *, state: str, actor: Actor) -> list[tuple[str, ActionDefinition]]:
    """The actions this actor may take in this state, in the lifecycle's order."""
    found = []
    transitions = lifecycle.compiled.transitions
    for name, definition in lifecycle.actions.items():
        compiled = transitions.get((name, state))
        if compiled is not None and not actor.roles.isdisjoint(compiled.role_set):
            found.append((name, definition))
    return found
