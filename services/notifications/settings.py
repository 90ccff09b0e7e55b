"""Notification settings: ONESTOP_NOTIFY_* (or the `.env` file).

`ONESTOP_NOTIFY_TEMPLATE_ID` is the subscribe-message template (订阅消息模板) chosen for case
progress in the mini-program's WeChat console; `ONESTOP_NOTIFY_FIELDS` maps what onestop sends
to that template's keys (JSON), `ONESTOP_NOTIFY_TEMPLATE_IDS` gives a different template to some
events (JSON, event → template id). Without a template (and outside the demo) notices are
recorded as `skipped`, not sent.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.config import get_settings

DEMO_TEMPLATE_ID = "demo-case-progress"


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_NOTIFY_", env_file=".env", extra="ignore")

    enabled: bool = True
    template_id: str = ""
    template_ids: dict[str, str] = Field(default_factory=dict)
    # onestop's values -> the template's keys; the key's type prefix sets WeChat's limits
    fields: dict[str, str] = Field(default_factory=lambda: {
        "matter": "thing1", "number": "character_string2", "status": "phrase3", "next_step": "thing4",
        "time": "time5"})
    miniprogram_state: Literal["developer", "trial", "formal"] = "formal"
    page: str = "pages/cases/detail?id={case_id}"

    def template_for(self, event: str) -> str:
        template = self.template_ids.get(event) or self.template_id
        if not template and get_settings().demo:
            return DEMO_TEMPLATE_ID
        return template


@lru_cache
def get_notification_settings() -> NotificationSettings:
    return NotificationSettings()
