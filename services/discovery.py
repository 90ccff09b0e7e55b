"""Finds each domain package's conventional modules (models.py, tasks.py)."""

import importlib
import pkgutil

import services


def import_domain_modules(name: str) -> None:
    """Import `services.<domain>.<name>` for every domain that has one."""
    for module in pkgutil.iter_modules(services.__path__):
        if module.ispkg:
            try:
                importlib.import_module(f"services.{module.name}.{name}")
            except ModuleNotFoundError as error:
                if error.name != f"services.{module.name}.{name}":
                    raise
