"""``pixdex config``: every setting, its value, where that value came from, and what it does."""

from __future__ import annotations

import json
import os
import tomllib
from typing import Any

from pixdex.cli import app
from pixdex.cli.common import JsonOpt, out, settings
from pixdex.config import (
    SECRET_SETTINGS,
    default_config_file,
    env_name,
    lookup,
    setting_fields,
)


def _from_file() -> dict[str, Any]:
    path = default_config_file()
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):  # a bad file was already refused by settings()
        return {}


def _origin(dotted: str, in_file: dict[str, Any]) -> str:
    if env_name(dotted) in os.environ:
        return env_name(dotted)
    table: Any = in_file
    for part in dotted.split("."):
        if not isinstance(table, dict) or part not in table:
            return "default"
        table = table[part]
    return str(default_config_file())


def _shown(dotted: str, value: Any) -> Any:
    if dotted in SECRET_SETTINGS and value:
        return "<hidden>"
    return str(value) if hasattr(value, "__fspath__") else value


@app.command("config")
def show_config(as_json: JsonOpt = False) -> None:
    """Every setting: its value (secrets hidden), where it came from, and what it does.
    Settings come from flags, PIXDEX_* variables and the config file, in that order."""
    config = settings()
    in_file = _from_file()
    rows = [
        {
            "name": dotted,
            "value": _shown(dotted, lookup(config, dotted)),
            "from": _origin(dotted, in_file),
            "env": env_name(dotted),
            "description": info.description or "",
        }
        for dotted, info in setting_fields()
    ]
    if as_json:
        print(json.dumps({"config_file": str(default_config_file()), "settings": rows}, indent=2))
        return
    out.print(f"# config file: {default_config_file()}", highlight=False, markup=False)
    for row in rows:
        where = row["from"] if row["from"] != row["env"] else "environment"
        out.print(
            f"{row['name']} = {row['value']!r}  # {where}; {row['env']}\n    {row['description']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
