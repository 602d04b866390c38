"""Finds and loads plugins: built-ins first, then the `ablate` entry-point group.

A plugin that fails to import or to register, or that holds no `@hookimpl ablate_register`,
is reported as a warning naming the package, the entry point and the error; everything else
still loads. Failed and disabled plugins are also named when a recipe asks for a component
name nobody registered (it may be theirs).
"""

from __future__ import annotations

import os
import warnings
from importlib import metadata

import pluggy

from ablate import hookspecs
from ablate.registry import BUILTIN_PLUGIN

ENTRY_POINT_GROUP = "ablate"
DISABLE_ENV = "ABLATE_DISABLE_PLUGINS"
BUILTIN = "ablate.builtin"


class PluginWarning(UserWarning):
    """A third-party plugin could not be loaded."""


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def make_manager(notes: list[str] | None = None) -> pluggy.PluginManager:
    """Built-ins and every installed, not disabled plugin; `notes` collects one line per plugin
    that did not load (see Registry.load_notes)."""
    notes = notes if notes is not None else []
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    from ablate.components import builtin

    pm.register(builtin, name=BUILTIN)
    for name in disabled_plugins():
        pm.set_blocked(name)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name):
            notes.append(f"Plugin {ep.name!r} ({_dist_name(ep)}) is disabled by {DISABLE_ENV}")
            continue
        if pm.has_plugin(ep.name):
            continue
        problem = _register_entry_point(pm, ep)
        if problem:
            notes.append(_note(ep, problem))
            _warn(ep, problem)
    return pm


def _register_entry_point(pm: pluggy.PluginManager, ep) -> str | None:
    """Import and register one plugin; why it could not be, or None."""
    try:
        plugin = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - any plugin failure, sys.exit included, must only warn
        return f"failed to import: {_describe(exc)}"
    try:
        pm.register(plugin, name=ep.name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - e.g. a hookimpl with the wrong arguments
        return f"is not a valid ablate plugin: {_describe(exc)}"
    if not any(impl.plugin is plugin for impl in pm.hook.ablate_register.get_hookimpls()):
        # pluggy ignores an undecorated or misspelt hook silently: the plugin would add nothing.
        pm.unregister(plugin)
        return f"is not a valid ablate plugin: {_missing_hook(plugin)}"
    return None


def _missing_hook(plugin) -> str:
    found = getattr(plugin, "ablate_register", None)
    if callable(found):
        return "its ablate_register lacks the @ablate.hookspecs.hookimpl decorator"
    marker = f"{hookspecs.PROJECT}_impl"  # the attribute pluggy's @hookimpl sets
    hooks = [name for name in dir(plugin) if hasattr(getattr(plugin, name, None), marker)]
    found_hooks = f" (its hooks: {', '.join(hooks)})" if hooks else ""
    return f"it has no @hookimpl function named ablate_register{found_hooks}"


def load_all(registries) -> pluggy.PluginManager:
    """Call every plugin's `ablate_register`, each on its own so one failure stays local.

    Built-ins go first, so a plugin reusing a built-in name is the one reported; a plugin
    that fails midway has its partial registrations removed.
    """
    pm = make_manager(getattr(registries, "load_notes", None))
    # pluggy calls hooks last-registered first; keep that order among plugins only.
    impls = list(reversed(pm.hook.ablate_register.get_hookimpls()))
    impls.sort(key=lambda impl: impl.plugin_name != BUILTIN)
    for impl in impls:
        _call_register(impl, registries)
    return pm


def _call_register(impl, registries) -> None:
    """One plugin's `ablate_register`, its entries labelled with its distribution unless it
    names one itself; on failure, what it registered is removed and it is warned about."""
    builtin = impl.plugin_name == BUILTIN
    ep = None if builtin else _entry_point_named(impl.plugin_name)
    before = {reg.kind: set(reg.names()) for reg in registries}
    for reg in registries:
        reg.default_plugin = BUILTIN_PLUGIN if builtin else _distribution(ep)
    try:
        impl.function(registries=registries)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin's sys.exit must not end the command
        if builtin:
            raise
        for reg in registries:
            for name in set(reg.names()) - before[reg.kind]:
                reg.unregister(name)
        problem = f"failed to register: {_describe(exc)}"
        getattr(registries, "load_notes", []).append(_note(ep, problem))
        _warn(ep, problem)
    finally:
        for reg in registries:
            reg.default_plugin = BUILTIN_PLUGIN


def loaded_plugins() -> list[tuple[str, str]]:
    """(entry-point name, distribution) of each plugin that is installed and not blocked."""
    blocked = disabled_plugins()
    return [(ep.name, _dist_name(ep)) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name not in blocked]


def _entry_point_named(name: str):
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep
    return name


def _distribution(ep) -> str:
    """The plugin's distribution name (what its entries are labelled with), else its entry point's."""
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else getattr(ep, "name", str(ep))


def _note(ep, problem: str) -> str:
    if isinstance(ep, str):
        return f"Plugin {ep!r} did not load: {problem}"
    return f"Plugin {ep.name!r} ({_dist_name(ep)}) did not load: {problem}"


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
