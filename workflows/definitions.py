"""Matter and lifecycle definitions: the data the engine interprets.

Loaded from YAML under workflows/ and validated here, so a broken file fails at load time with
the file and the path of the problem, never halfway through a case.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Level = Literal["county", "town", "village"]
SubjectKind = Literal["person", "organization", "either"]
ClockState = Literal["not_started", "running", "paused", "stopped"]
SlaEffect = Literal["start", "pause", "resume", "stop"]
Need = Literal["comment", "items"]

ROLES = {"applicant", "helper", "clerk", "reviewer", "supervisor", "admin"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StateDefinition(_Strict):
    label: str
    national_status: str
    clock: ClockState = "not_started"
    terminal: bool = False


class ActionDefinition(_Strict):
    label: str
    from_states: tuple[str, ...] = Field(alias="from", min_length=1)
    to: str
    roles: tuple[str, ...] = Field(min_length=1)
    needs: tuple[Need, ...] = ()
    sla: SlaEffect | None = None
    effects: tuple[str, ...] = ()

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; known: {sorted(ROLES)}")
        return roles


class Lifecycle(_Strict):
    code: str
    name: str
    initial: str
    states: dict[str, StateDefinition]
    actions: dict[str, ActionDefinition]

    @model_validator(mode="after")
    def _consistent(self) -> "Lifecycle":
        if self.initial not in self.states:
            raise ValueError(f"initial state {self.initial!r} is not a state")
        for name, action in self.actions.items():
            for state in (*action.from_states, action.to):
                if state not in self.states:
                    raise ValueError(f"action {name!r} names unknown state {state!r}")
        reachable = {self.initial}
        frontier = [self.initial]
        while frontier:
            state = frontier.pop()
            for action in self.actions.values():
                if state in action.from_states and action.to not in reachable:
                    reachable.add(action.to)
                    frontier.append(action.to)
        unreachable = set(self.states) - reachable
        if unreachable:
            raise ValueError(f"unreachable states: {sorted(unreachable)}")
        for name, state in self.states.items():
            leaves = any(name in action.from_states for action in self.actions.values())
            if not state.terminal and not leaves:
                raise ValueError(f"state {name!r} is a dead end: not terminal and no action leaves it")
        return self

    def without_actions(self, dropped: tuple[str, ...]) -> "Lifecycle":
        unknown = set(dropped) - set(self.actions)
        if unknown:
            raise ValueError(f"cannot drop unknown actions {sorted(unknown)}")
        data = self.model_dump(by_alias=True)
        for name in dropped:
            del data["actions"][name]
        return Lifecycle.model_validate(data)


class MaterialDefinition(_Strict):
    code: str
    name: str
    required: bool = True
    certificate_type: str | None = None  # an e-certificate type that can stand in for the file
    note: str | None = None


class MatterDefinition(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    name: str
    type: str
    department: str
    subject_kind: SubjectKind
    promise_kind: Literal["immediate", "promised"]
    legal_days: int | None = Field(default=None, ge=0)
    promised_days: int = Field(ge=0)
    receive_levels: tuple[Level, ...] = Field(min_length=1)
    handle_level: Level
    materials: tuple[MaterialDefinition, ...] = ()
    form_schema: dict[str, Any]
    certificate_type: str | None = None
    lifecycle: str = "standard"
    drop_actions: tuple[str, ...] = ()
    version: int = Field(default=1, ge=1)
    effective_from: date
    category: str = "general"
    assumptions: tuple[str, ...] = ()  # values chosen for the demo where no public source was found
    sources: tuple[str, ...] = ()

    @field_validator("form_schema")
    @classmethod
    def _valid_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise ValueError(f"form_schema is not a valid JSON Schema: {error.message}") from error
        return schema

    @model_validator(mode="after")
    def _limits(self) -> "MatterDefinition":
        if self.legal_days is not None and self.promised_days > self.legal_days:
            raise ValueError("promised_days may not exceed legal_days")
        codes = [material.code for material in self.materials]
        if len(codes) != len(set(codes)):
            raise ValueError("material codes must be unique")
        return self
