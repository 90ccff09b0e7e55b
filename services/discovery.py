"""Finds each domain package's conventional modules (models.py, tasks.py)."""

import importlib
import pkgutil

import services


def import_domain_modules(name: str) -> list:
    """Import `services.<domain>.<name>` for every domain that has one; returns the modules."""
    found = []
    for module in pkgutil.iter_modules(services.__path__):
        if module.ispkg:
            try:
                found.append(importlib.import_module(f"services.{module.name}.{name}"))
            except ModuleNotFoundError as error:
                if error.name != f"services.{module.name}.{name}":
                    raise
    return found
