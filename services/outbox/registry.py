"""Registers every domain's job handlers (their tasks.py) before a worker runs, and queues the
periodic jobs (a domain's tasks.py may define `schedule_periodic(session)`)."""

from sqlmodel import Session

from services.discovery import import_domain_modules


def register_all_handlers() -> list:
    return import_domain_modules("tasks")


def schedule_periodic_jobs(engine) -> None:
    """Make sure every domain's periodic job (SLA sweep, certificate expiry, …) is queued. Each
    job's dedupe key makes this safe to call from every worker at every start."""
    with Session(engine) as session:
        for tasks in register_all_handlers():
            schedule = getattr(tasks, "schedule_periodic", None)
            if schedule is not None:
                schedule(session)
        session.commit()
