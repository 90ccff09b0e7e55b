"""Registers every domain's job handlers (their tasks.py) before a worker runs."""

from services.discovery import import_domain_modules


def register_all_handlers() -> None:
    import_domain_modules("tasks")
