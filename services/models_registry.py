"""Imports every domain's models so SQLModel.metadata knows all tables (Alembic, tests)."""

import importlib
import pkgutil

import services

for _module in pkgutil.iter_modules(services.__path__):
    if _module.ispkg:
        try:
            importlib.import_module(f"services.{_module.name}.models")
        except ModuleNotFoundError as error:
            if error.name != f"services.{_module.name}.models":
                raise
