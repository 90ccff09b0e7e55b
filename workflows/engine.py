"""The workflow engine: a small interpreter over a Lifecycle. Pure: no I/O, no database.

Given a case's state, an action and an actor, it says whether the action is allowed, what the
next state is, what the SLA clock does and which effects follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.definitions import ActionDefinition, Lifecycle


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
    action: str
    missing: tuple[str, ...] = field(default_factory=tuple)


def _provided(needs: tuple[str, ...], request: Mapping[str, Any]) -> tuple[str, ...]:
    missing = []
    for need in needs:
        value = request.get(need)
        if value is None or (isinstance(value, str) and not value.strip()) or value == []:
            missing.append(need)
    return tuple(missing)


def decide(lifecycle: Lifecycle, *, state: str, action: str, actor: Actor,
           request: Mapping[str, Any] | None = None) -> Decision:
    """Decide one action. Checks in the order of the API contract: role, needs, state."""
    definition = lifecycle.actions.get(action)
    if definition is None:
        raise UnknownAction(action)
    if not actor.roles & set(definition.roles):
        raise RoleNotAllowed(action, definition.roles)
    missing = _provided(definition.needs, request or {})
    if missing:
        raise MissingNeeds(action, missing)
    if state not in definition.from_states:
        raise ActionNotAvailable(action, state)
    return Decision(action=action, from_state=state, to_state=definition.to, sla=definition.sla,
                    effects=definition.effects)


def available_actions(lifecycle: Lifecycle, *, state: str, actor: Actor) -> list[tuple[str, ActionDefinition]]:
    """The actions this actor may take in this state, in the lifecycle's order."""
    return [
        (name, definition)
        for name, definition in lifecycle.actions.items()
        if state in definition.from_states and actor.roles & set(definition.roles)
    ]
