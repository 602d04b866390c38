"""Finds and loads plugins: built-ins first, then the `ablate` entry-point group.

A plugin that fails to import or to register is reported as a warning naming the
package, the entry point and the error; everything else still loads.
"""

from __future__ import annotations

import os
import warnings
from importlib import metadata

import pluggy

from ablate import hookspecs

ENTRY_POINT_GROUP = "ablate"
DISABLE_ENV = "ABLATE_DISABLE_PLUGINS"
BUILTIN = "ablate.builtin"


class PluginWarning(UserWarning):
    """A third-party plugin could not be loaded."""


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def make_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    from ablate.components import builtin

    pm.register(builtin, name=BUILTIN)
    for name in disabled_plugins():
        pm.set_blocked(name)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any plugin failure, sys.exit included, must only warn
            _warn(ep, f"failed to import: {_describe(exc)}")
            continue
        try:
            pm.register(plugin, name=ep.name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - e.g. a hookimpl with the wrong arguments
            _warn(ep, f"is not a valid ablate plugin: {_describe(exc)}")
    return pm


def load_all(registries) -> pluggy.PluginManager:
    """Call every plugin's `ablate_register`, each on its own so one failure stays local.

    Built-ins go first, so a plugin reusing a built-in name is the one reported; a plugin
    that fails midway has its partial registrations removed.
    """
    pm = make_manager()
    # pluggy calls hooks last-registered first; keep that order among plugins only.
    impls = list(reversed(pm.hook.ablate_register.get_hookimpls()))
    impls.sort(key=lambda impl: impl.plugin_name != BUILTIN)
    for impl in impls:
        before = {reg.kind: set(reg.names()) for reg in registries}
        try:
            impl.function(registries=registries)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a plugin's sys.exit must not end the command
            if impl.plugin_name == BUILTIN:
                raise
            for reg in registries:
                for name in set(reg.names()) - before[reg.kind]:
                    reg.unregister(name)
            _warn(_entry_point_named(impl.plugin_name), f"failed to register: {_describe(exc)}")
    return pm


def loaded_plugins() -> list[tuple[str, str]]:
    """(entry-point name, distribution) of each plugin that is installed and not blocked."""
    blocked = disabled_plugins()
    return [(ep.name, _dist_name(ep)) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name not in blocked]


def _entry_point_named(name: str):
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep
    return name


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def _warn(ep, what: str) -> None:
    if isinstance(ep, str):
        label = f"plugin {ep!r}"
    else:
        label = f"plugin {ep.name!r} (package {_dist_name(ep)}, entry point {ep.value!r})"
    warnings.warn(f"ablate: {label} {what}; skipped. Set {DISABLE_ENV}={getattr(ep, 'name', ep)} to silence.", PluginWarning, stacklevel=2)
