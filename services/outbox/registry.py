"""Imports every domain's tasks.py so their job handlers are registered before a worker runs."""

import importlib
import pkgutil

import services


def register_all_handlers() -> None:
    for module in pkgutil.iter_modules(services.__path__):
        if module.ispkg:
            try:
                importlib.import_module(f"services.{module.name}.tasks")
            except ModuleNotFoundError as error:
                if error.name != f"services.{module.name}.tasks":
                    raise
