"""`hw4 env`: the HW4_* environment variables, their values now and their defaults."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("env", help="list the HW4_* environment variables, set or not")
    p.set_defaults(func=_env)


def _env(args) -> int:
    from ..env import describe

    rows = describe()
    width = max(len(name) for name, *_ in rows)
    for name, now, default, help_ in rows:
        state = f"= {now}" if now else f"(unset; default {default})" if default else "(unset)"
        print(f"{name:<{width}}  {state}\n{'':<{width}}  {help_}")
    return 0
