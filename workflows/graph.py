"""A matter's resolved lifecycle as a Mermaid `stateDiagram-v2` (labels in Chinese)."""

from __future__ import annotations

from workflows.catalogue import Matter
from workflows.definitions import PREVIOUS, SAME

ROLE_LABELS = {"applicant": "申请人", "helper": "帮办代办员", "clerk": "窗口人员", "reviewer": "审批人员",
               "supervisor": "中心负责人", "admin": "管理员"}
CLOCK_LABELS = {"running": "计时", "paused": "暂停计时"}


def _text(value: str) -> str:
    # Mermaid ends a transition label at a newline and reads ':' and ';' as syntax
    return value.replace(":", "：").replace(";", "；").replace("\n", " ").replace('"', "'")


def mermaid(matter: Matter, *, loops: bool = True) -> str:
    """The state machine of one matter, ready to paste into a Markdown ```mermaid block.

    `loops=False` leaves out the actions that keep the case where it is (extend, transfer, claim)."""
    lifecycle = matter.lifecycle
    d = matter.definition
    limits = "即办件" if d.promise_kind == "immediate" else f"承诺 {d.promised_days} 个工作日"
    lines = ["stateDiagram-v2",
             f"    %% {_text(d.name)} ({d.code}) v{d.version}, 生效 {d.effective_from.isoformat()}; {limits}"]
    for name, state in lifecycle.states.items():
        clock = CLOCK_LABELS.get(state.clock)
        lines.append(f'    state "{_text(state.label)}{f"（{clock}）" if clock else ""}" as {name}')
    lines.append(f"    [*] --> {lifecycle.initial}")

    edges: dict[tuple[str, str], list[str]] = {}
    for action_name, action in lifecycle.actions.items():
        for transition in action.transitions:
            roles = "/".join(ROLE_LABELS.get(role, role) for role in action.roles_of(transition))
            label = f"{_text(action.label)}〔{roles}〕"
            for state in transition.from_states:
                if transition.to == SAME:
                    if not loops:
                        continue
                    targets = [state]
                elif transition.to == PREVIOUS:
                    targets = sorted(lifecycle.entered_from(state))
                    label = f"{_text(action.label)}（回到挂起前状态）〔{roles}〕"
                else:
                    targets = [transition.to]
                for target in targets:
                    edges.setdefault((state, target), []).append(label)
    for (source, target), labels in edges.items():
        lines.append(f"    {source} --> {target} : {' ／ '.join(dict.fromkeys(labels))}")
    for name, state in lifecycle.states.items():
        if state.terminal:
            lines.append(f"    {name} --> [*]")
    return "\n".join(lines) + "\n"
