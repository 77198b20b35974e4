"""The plugin manager: finds plugins through the ``spa`` entry-point group."""

from __future__ import annotations

import functools
import logging

import pluggy

from . import hookspecs

hookimpl = pluggy.HookimplMarker("spa")
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with every installed SPA plugin loaded.

    A plugin whose import fails (its framework is not installed) is skipped with a
    debug message: the other plugins keep working.
    """
    pm = pluggy.PluginManager("spa")
    pm.add_hookspecs(hookspecs)
    from importlib.metadata import entry_points

    for ep in entry_points(group="spa"):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a missing framework must not break the rest
            log.debug("SPA plugin %s not loaded: %s", ep.name, exc)
            continue
        pm.register(plugin, name=ep.name)
    return pm


def reset_plugins() -> None:
    """Forget the loaded plugins (tests, or after installing a plugin at run time)."""
    plugin_manager.cache_clear()
