"""Plugins load through real `ablate` entry points; broken ones only warn.

Each test writes `*.dist-info` folders (METADATA + entry_points.txt) into a tmp dir on
sys.path, which is what `pip install` leaves behind, so `importlib.metadata` finds them
exactly as it finds installed packages. A fake dist named like the example plugin comes
first on sys.path and so shadows an installed copy of it.
"""

from __future__ import annotations

import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from ablate.errors import RecipeError, RegistryError
from ablate.plugin_manager import DISABLE_ENV, ENTRY_POINT_GROUP, PluginWarning, loaded_plugins
from ablate.recipe import recipe_from_dict
from ablate.registry import ComponentConfig, Registry, registries, reset_registries

EXAMPLE_SRC = Path(__file__).resolve().parents[1] / "plugins" / "ablate-example-connector" / "src"
FAKE_VERSION = "0.0.1"  # the editable install is 0.1.0: seeing this proves the fake dist was used
TEST_MODULE_PREFIX = "ablate_plugin_under_test_"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh 'site-packages' on sys.path; registries reload before and after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    reset_registries()
    yield Site(tmp_path)
    for name in [m for m in sys.modules if m.startswith(TEST_MODULE_PREFIX)]:
        del sys.modules[name]
    reset_registries()


class Site:
    def __init__(self, root: Path):
        self.root = root

    def add_dist(self, name: str, version: str, entry_points: dict[str, str]) -> None:
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")

    def add_module(self, name: str, source: str) -> None:
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))

    def add_example_plugin(self, monkeypatch) -> None:
        monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
        monkeypatch.syspath_prepend(str(self.root))  # keep the fake dist first
        self.add_dist("ablate-example-connector", FAKE_VERSION, {"example_connector": "ablate_example_connector"})


def entry_point(name: str):
    return next(ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name)


def stand_in_components(regs) -> dict:
    """Model blocks for a minimal recipe. Uses the real encoder/LLM entries when registered."""
    blocks = {}
    for kind, real in (("encoder", "hf_clip"), ("llm", "hf_causal_lm")):
        if real in regs[kind]:
            blocks[kind] = {"type": real, **_required_fields(regs[kind].get(real).config)}
        else:
            regs[kind].register(f"stand_in_{kind}", ComponentConfig, lambda config: None)
            blocks[kind] = {"type": f"stand_in_{kind}"}
    return blocks


def _required_fields(config: type[ComponentConfig]) -> dict:
    return {n: "/nonexistent/tiny" for n, f in config.model_fields.items() if f.is_required()}


# --- (a) the example plugin, through its entry point ------------------------------------------


def test_example_plugin_loads_through_entry_point(site, monkeypatch, capsys):
    site.add_example_plugin(monkeypatch)
    ep = entry_point("example_connector")
    assert (ep.value, ep.dist.name, ep.dist.version) == (
        "ablate_example_connector", "ablate-example-connector", FAKE_VERSION
    )
    assert ("example_connector", f"ablate-example-connector {FAKE_VERSION}") in loaded_plugins()
    from ablate.cli import main

    assert main(["list"]) == 0  # `ablate list` names it by the name ABLATE_DISABLE_PLUGINS takes
    assert f"example_connector (ablate-example-connector {FAKE_VERSION})" in capsys.readouterr().out

    regs = registries()
    assert "pooled_mlp" in regs.connector
    assert "(plugin ablate-example-connector)" in regs.connector.get("pooled_mlp").origin
    assert {"identity", "linear", "mlp", "qformer", "resampler"} <= set(regs.connector.names())

    model = stand_in_components(regs)
    recipe = recipe_from_dict({
        "name": "pooled",
        "model": {**model, "connector": {"type": "pooled_mlp", "pool": 3, "mode": "max"}},
    })
    connector_config = recipe.model.connector
    assert type(connector_config).__name__ == "PooledMLPConfig"
    assert (connector_config.pool, connector_config.mode, connector_config.depth) == (3, "max", 2)
    assert recipe.resolved()["model"]["connector"] == {"type": "pooled_mlp", "pool": 3, "mode": "max", "depth": 2}
    module = regs.connector.get("pooled_mlp").build(connector_config, in_dim=8, out_dim=4, num_input_tokens=36)
    assert module.num_output_tokens == 4

    with pytest.raises(RecipeError, match=r"model\.connector\.pool.*greater than or equal to 1"):
        recipe_from_dict({"name": "bad", "model": {**model, "connector": {"type": "pooled_mlp", "pool": 0}}})


# --- (b) broken plugins warn, everything else loads -------------------------------------------


def test_plugin_that_fails_to_import_only_warns(site):
    site.add_module(f"{TEST_MODULE_PREFIX}import", "raise ImportError('needs the frobnicate package')\n")
    site.add_dist("ablate-broken-import", "1.2.3", {"broken_import": f"{TEST_MODULE_PREFIX}import"})
    with pytest.warns(PluginWarning) as caught:
        regs = registries()
    message = _only_message(caught, "broken_import")
    assert "plugin 'broken_import' (package ablate-broken-import 1.2.3, " in message
    assert f"entry point '{TEST_MODULE_PREFIX}import')" in message
    assert "failed to import: ImportError: needs the frobnicate package" in message
    assert f"{DISABLE_ENV}=broken_import" in message
    assert "mlp" in regs.connector  # built-ins still load


def test_plugin_whose_register_raises_only_warns_and_leaves_nothing_behind(site):
    site.add_module(f"{TEST_MODULE_PREFIX}register", """
        from ablate.hookspecs import hookimpl
        from ablate.registry import ComponentConfig

        @hookimpl
        def ablate_register(registries):
            registries.connector.register("half_done", ComponentConfig, lambda config, **ctx: None)
            raise RuntimeError("config file missing")
    """)
    site.add_dist("ablate-broken-register", "0.3", {"broken_register": f"{TEST_MODULE_PREFIX}register"})
    with pytest.warns(PluginWarning) as caught:
        regs = registries()
    message = _only_message(caught, "broken_register")
    assert "plugin 'broken_register' (package ablate-broken-register 0.3, " in message
    assert f"entry point '{TEST_MODULE_PREFIX}register')" in message
    assert "failed to register: RuntimeError: config file missing" in message
    assert "half_done" not in regs.connector  # its partial registration was rolled back
    assert {"identity", "linear", "mlp", "qformer", "resampler"} <= set(regs.connector.names())


def test_plugin_reusing_a_builtin_name_is_the_one_reported(site):
    site.add_module(f"{TEST_MODULE_PREFIX}dupe", """
        from ablate.hookspecs import hookimpl
        from ablate.registry import ComponentConfig

        def build_my_mlp(config, **ctx):
            return None

        @hookimpl
        def ablate_register(registries):
            registries.connector.register("mlp", ComponentConfig, build_my_mlp, plugin="ablate-dupe")
    """)
    site.add_dist("ablate-dupe", "1.0", {"dupe": f"{TEST_MODULE_PREFIX}dupe"})
    with pytest.warns(PluginWarning) as caught:
        regs = registries()
    message = _only_message(caught, "dupe")
    assert "connector 'mlp' is registered twice: first by ablate.components.connectors:build_mlp" in message
    assert f"again by {TEST_MODULE_PREFIX}dupe:build_my_mlp line 5 (plugin ablate-dupe)" in message
    assert regs.connector.get("mlp").origin.startswith("ablate.components.connectors:build_mlp")


def _only_message(caught, plugin: str) -> str:
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    mine = [m for m in messages if f"plugin {plugin!r}" in m]
    assert len(mine) == 1, messages
    return mine[0]


# --- (c) ABLATE_DISABLE_PLUGINS ---------------------------------------------------------------


def test_disable_env_blocks_the_plugin(site, monkeypatch):
    site.add_example_plugin(monkeypatch)
    monkeypatch.setenv(DISABLE_ENV, "something_else, example_connector")
    assert "pooled_mlp" not in registries().connector
    assert "example_connector" not in [name for name, _ in loaded_plugins()]
    assert "mlp" in registries().connector

    monkeypatch.setenv(DISABLE_ENV, "something_else")
    reset_registries()
    assert "pooled_mlp" in registries().connector


# --- (d) registry errors ----------------------------------------------------------------------


def test_registering_a_name_twice_names_both_places():
    registry = Registry("connector")

    def first_builder(config, **ctx):
        return None

    def second_builder(config, **ctx):
        return None

    registry.register("proj", ComponentConfig, first_builder)
    with pytest.raises(RegistryError) as info:
        registry.register("proj", ComponentConfig, second_builder, plugin="other-pkg")
    message = str(info.value)
    assert message.startswith("connector 'proj' is registered twice: first by ")
    assert f"{__name__}:test_registering_a_name_twice_names_both_places.<locals>.first_builder" in message
    assert "second_builder" in message and "(plugin other-pkg)" in message
    assert registry.get("proj").builder is first_builder


def test_unknown_key_suggests_the_closest(site):
    with pytest.raises(RegistryError, match=r"unknown connector 'mpl'\. Did you mean 'mlp'\? Registered: identity, "):
        registries().connector.get("mpl")
    model = stand_in_components(registries())
    with pytest.raises(RecipeError) as info:
        recipe_from_dict({"name": "typo", "model": {**model, "connector": {"type": "qfromer"}}})
    assert "model.connector.type: unknown connector 'qfromer'. Did you mean 'qformer'?" in str(info.value)
