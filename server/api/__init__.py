"""The API's blueprints, one module per resource; ``register(api)`` mounts them all."""

from __future__ import annotations

import importlib
import pkgutil

from flask_smorest import Api


def register(api: Api) -> None:
    """Register the ``blp`` of every module in this package (sorted by name)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        api.register_blueprint(module.blp)
