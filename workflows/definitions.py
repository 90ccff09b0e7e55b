"""Matter and lifecycle definitions: the data the engine interprets.

Loaded from YAML under workflows/ (or from an administrator's edit) and validated here and in
workflows/resolve.py, so a broken definition fails at load time with the file and the path of
the problem, never halfway through a case. The JSON Schema published for matter files
(workflows/schema/matter.schema.json) is generated from `MatterDefinition`.

A resolved lifecycle is plain data: states, and actions that each hold a list of transitions
`{from: [states], to: state, roles: [...]}`. The same action may leave different states for
different targets (`review_pass` moves each review step to the next). Two targets are symbolic:
`@same` (the case stays where it is: extend, transfer, claim) and `@previous` (back to the
state the case was in before: resume after a suspension).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, get_args

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

Level = Literal["county", "town", "village"]
SubjectKind = Literal["person", "organization", "either"]
PromiseKind = Literal["immediate", "promised"]
ClockState = Literal["not_started", "running", "paused", "stopped"]
SlaEffect = Literal["start", "pause", "resume", "extend", "stop"]
Need = Literal["comment", "items", "days", "max_days"]
Role = Literal["applicant", "helper", "clerk", "reviewer", "supervisor", "admin"]

ROLES = frozenset(get_args(Role))
NEEDS = frozenset(get_args(Need))
SAME = "@same"  # target: the case stays in the state it is in
PREVIOUS = "@previous"  # target: the state the case was in before it entered this one

# State names are stored in cases.state (20 characters).
StateName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,19}$", description="state name: a-z, 0-9, _; ≤ 20")]
ActionName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Target = Annotated[str, Field(pattern=r"^([a-z][a-z0-9_]{0,19}|@same|@previous)$",
                              description="a state, `@same` (stay) or `@previous` (back to the state before)")]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ----------------------------------------------------------------------------- lifecycles

class StateDefinition(_Strict):
    label: str = Field(min_length=1)
    national_status: str = Field(min_length=1, description="全国一体化平台办件状态 (label)")
    clock: ClockState = "not_started"
    terminal: bool = False


class Transition(_Strict):
    from_states: tuple[StateName, ...] = Field(alias="from", min_length=1)
    to: Target
    roles: tuple[Role, ...] = Field(default=(), description="who may take it; empty: the action's roles")


class ActionDefinition(_Strict):
    label: str = Field(min_length=1)
    roles: tuple[Role, ...] = Field(default=(), description="who may take the action (each transition may narrow)")
    transitions: tuple[Transition, ...] = Field(min_length=1)
    needs: tuple[Need, ...] = ()
    sla: SlaEffect | None = None
    effects: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")], ...] = ()

    @property
    def from_states(self) -> tuple[str, ...]:
        """Every state the action may be taken in, in definition order."""
        seen: dict[str, None] = {}
        for transition in self.transitions:
            seen.update(dict.fromkeys(transition.from_states))
        return tuple(seen)

    def roles_of(self, transition: Transition) -> tuple[str, ...]:
        return transition.roles or self.roles

    @property
    def all_roles(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for transition in self.transitions:
            seen.update(dict.fromkeys(self.roles_of(transition)))
        return tuple(seen)


class GeneratedAction(_Strict):
    name: ActionName
    label: str
    needs: tuple[Need, ...] = ()


class ReviewRules(_Strict):
    """How a matter's review steps are woven into this lifecycle (see workflows/resolve.py)."""

    decision_state: StateName = Field(description="where the case waits for the decision after the last step")
    decision_label: str | None = Field(default=None, description="label of the decision state once steps exist")
    enter_action: ActionName = Field(description="the action whose move into decision_state now enters step 1")
    decision_actions: tuple[ActionName, ...] = Field(min_length=1, description="taken only in decision_state")
    step_national_status: str
    pass_action: GeneratedAction
    return_action: GeneratedAction


class ImmediateRules(_Strict):
    """即办件: `action` (accept) decides at once, with the target, clock and effects of `decision_action`."""

    action: ActionName
    decision_action: ActionName
    label: str | None = None


class CompiledTransition:
    """What decide() needs about one (action, state) pair, precomputed."""

    __slots__ = ("to", "roles", "role_set")

    def __init__(self, to: str, roles: tuple[str, ...]):
        self.to = to
        self.roles = roles
        self.role_set = frozenset(roles)


class CompiledLifecycle:
    """What decide() needs, precomputed: (action, state) → transition, each action's roles, and
    for every state the states a case can enter it from (what `@previous` may resolve to)."""

    __slots__ = ("transitions", "action_roles", "entries")

    def __init__(self, lifecycle: "Lifecycle"):
        transitions: dict[tuple[str, str], CompiledTransition] = {}
        entries: dict[str, set[str]] = {}
        action_roles: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
        for name, action in lifecycle.actions.items():
            roles = action.all_roles
            action_roles[name] = (frozenset(roles), roles)
            for transition in action.transitions:
                for state in transition.from_states:
                    transitions.setdefault((name, state), CompiledTransition(transition.to, action.roles_of(transition)))
                    if not transition.to.startswith("@") and transition.to != state:
                        entries.setdefault(transition.to, set()).add(state)
        self.transitions = transitions
        self.action_roles = action_roles
        self.entries = {state: frozenset(sources) for state, sources in entries.items()}

    # Derived from the lifecycle's fields, which pydantic compares already: two equal lifecycles
    # have equal indexes.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompiledLifecycle)

    __hash__ = None  # type: ignore[assignment]


class Lifecycle(_Strict):
    code: str
    name: str
    initial: StateName
    states: dict[StateName, StateDefinition] = Field(min_length=1)
    actions: dict[ActionName, ActionDefinition] = Field(min_length=1)
    review: ReviewRules | None = None
    immediate: ImmediateRules | None = None

    # Indexes for the engine, built once per lifecycle (the model is immutable).
    _compiled: CompiledLifecycle = PrivateAttr()

    def model_post_init(self, _context: Any) -> None:
        self._compiled = CompiledLifecycle(self)

    @property
    def compiled(self) -> CompiledLifecycle:
        # Read straight from pydantic's private-attribute store: attribute access to a private
        # attribute goes through BaseModel.__getattr__, ~1 µs, most of an engine decision.
        return self.__pydantic_private__["_compiled"]

    def transition(self, action: str, state: str) -> CompiledTransition | None:
        return self.compiled.transitions.get((action, state))

    def entered_from(self, state: str) -> frozenset[str]:
        """The states a case can come from into `state` (what `@previous` may resolve to)."""
        return self.compiled.entries.get(state, frozenset())

    def targets(self, action: str, state: str) -> tuple[str, ...]:
        """Where `action` may take a case in `state` (resolving @same and @previous to states)."""
        compiled = self.compiled.transitions.get((action, state))
        if compiled is None:
            return ()
        if compiled.to == SAME:
            return (state,)
        if compiled.to == PREVIOUS:
            return tuple(sorted(self.entered_from(state)))
        return (compiled.to,)


# ----------------------------------------------------------------------------- matters

class MaterialDefinition(_Strict):
    code: Slug
    name: str = Field(min_length=1)
    required: bool = True
    certificate_type: Slug | None = Field(
        default=None, description="an e-certificate type the applicant may hold that stands in for the file (免证办)")
    note: str | None = None


class ReviewStep(_Strict):
    code: StateName = Field(description="the state the case is in during this step")
    label: str = Field(min_length=1, description="e.g. 初审, 复审")
    roles: tuple[Role, ...] = Field(min_length=1, description="who passes or returns the case at this step")


class MatterDefinition(_Strict):
    """One matter (事项) of the catalogue: one YAML file under workflows/catalogue/."""

    code: Slug = Field(description="stable matter code; the file is named <code>.yaml")
    name: str = Field(min_length=2, description="事项名称")
    type: str = Field(min_length=2, description="事项类型: 行政许可, 行政确认, 公共服务 …")
    department: str = Field(min_length=2, description="实施主体")
    category: Slug = Field(description="business area, for routing to windows (e.g. market-regulation)")
    national_code: str | None = Field(default=None, pattern=r"^[0-9A-Z]{6,40}$",
                                      description="基本目录事项编码, where known")
    subject_kind: SubjectKind
    promise_kind: PromiseKind = Field(description="immediate: 即办件 (decided at acceptance); promised: 承诺件")
    legal_days: int | None = Field(default=None, ge=0, description="法定办结时限, working days; null: none set")
    extension_days: int | None = Field(default=None, ge=1,
                                       description="法定可延长, working days the legal limit may be extended by")
    promised_days: int = Field(ge=0, description="承诺办结时限, working days from acceptance; 0 for 即办件")
    receive_levels: tuple[Level, ...] = Field(min_length=1, description="levels whose points receive it")
    handle_level: Level = Field(description="the level that decides it")
    anywhere_in_county: bool = Field(
        default=False, description="全域通办: any service point of the applicant's county may handle it — the point "
                                   "that received the application, else the one nearest to the applicant")
    fee: str | None = Field(default=None, description="收费标准, in words")
    materials: tuple[MaterialDefinition, ...] = ()
    form_schema: dict[str, Any] = Field(description="JSON Schema (2020-12) of the application form")
    certificate_type: Slug | None = Field(default=None, description="e-certificate type issued on approval")
    lifecycle: Slug = Field(default="standard", description="the lifecycle under workflows/lifecycles/ it inherits")
    review_steps: tuple[ReviewStep, ...] = Field(default=(), description="审查环节 between acceptance and decision")
    roles: dict[ActionName, tuple[Role, ...]] = Field(
        default_factory=dict, description="who may take an inherited action, replacing the lifecycle's roles")
    drop_actions: tuple[ActionName, ...] = Field(default=(), description="inherited actions this matter doesn't use")
    drop_states: tuple[StateName, ...] = Field(default=(), description="inherited states this matter doesn't use")
    version: int = Field(default=1, ge=1, description="assigned by the version store; leave it out of files")
    effective_from: date = Field(description="the day this definition takes effect (Asia/Shanghai)")
    assumptions: tuple[str, ...] = Field(default=(), description="values chosen where no public source was found")
    sources: tuple[str, ...] = Field(default=(), description="where the facts come from")

    @field_validator("form_schema")
    @classmethod
    def _valid_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            where = "/".join(str(part) for part in error.path)
            raise ValueError(f"not a valid JSON Schema{f' at {where}' if where else ''}: {error.message}") from error
        if schema.get("type") != "object":
            raise ValueError("the form is an object: form_schema needs `type: object`")
        properties = schema.get("properties", {})
        missing = [name for name in schema.get("required", []) if name not in properties]
        if missing:
            raise ValueError(f"required names fields that are not in properties: {missing}")
        return schema

    @field_validator("roles")
    @classmethod
    def _roles_not_empty(cls, roles: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        empty = [name for name, names in roles.items() if not names]
        if empty:
            raise ValueError(f"an action without a role can never be taken: {empty}")
        return roles


SCHEMA_COMMAND = "onestop matters schema > workflows/schema/matter.schema.json"


def matter_json_schema() -> dict[str, Any]:
    """The JSON Schema of matter files, generated from MatterDefinition (published in workflows/schema/)."""
    schema = MatterDefinition.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Generated from workflows.definitions.MatterDefinition; do not edit. Regenerate: {SCHEMA_COMMAND}",
        **schema,
    }
