"""Plugins load through real `ablate` entry points; broken ones only warn.

Each test writes `*.dist-info` folders (METADATA + entry_points.txt) into a tmp dir on
sys.path, which is what `pip install` leaves behind, so `importlib.metadata` finds them
exactly as it finds installed packages. A fake dist named like the example plugin comes
first on sys.path and so shadows an installed copy of it.
"""

from __future__ import annotations

import re
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


# --- (e) a plugin's mistakes are named where they happen ---------------------------------------


def test_plugin_without_a_registering_hook_is_warned_about(site):
    site.add_module(f"{TEST_MODULE_PREFIX}undecorated", """
        from ablate.registry import ComponentConfig

        def ablate_register(registries):
            registries.connector.register("undecorated", ComponentConfig, lambda config, **ctx: None)
    """)
    site.add_module(f"{TEST_MODULE_PREFIX}misspelt", """
        from ablate.hookspecs import hookimpl

        @hookimpl
        def ablate_regsiter(registries):
            pass
    """)
    site.add_dist("ablate-undecorated", "1.0", {"undecorated": f"{TEST_MODULE_PREFIX}undecorated",
                                                "misspelt": f"{TEST_MODULE_PREFIX}misspelt"})
    with pytest.warns(PluginWarning) as caught:
        registries()
    assert "its ablate_register lacks the @ablate.hookspecs.hookimpl decorator" in _only_message(caught, "undecorated")
    assert "no @hookimpl function named ablate_register (its hooks: ablate_regsiter)" in _only_message(caught, "misspelt")


def test_unknown_name_names_the_plugins_that_did_not_load(site, monkeypatch):
    site.add_module(f"{TEST_MODULE_PREFIX}perceiver", "raise ImportError('needs einops')\n")
    site.add_dist("ablate-perceiver", "0.2", {"perceiver": f"{TEST_MODULE_PREFIX}perceiver"})
    site.add_example_plugin(monkeypatch)
    monkeypatch.setenv(DISABLE_ENV, "example_connector")
    with pytest.warns(PluginWarning):
        model = stand_in_components(registries())
    with pytest.raises(RecipeError) as info:
        recipe_from_dict({"name": "p", "model": {**model, "connector": {"type": "perceiver"}}})
    message = " ".join(str(info.value).split())
    assert "model.connector.type: unknown connector 'perceiver'." in message
    assert ("Plugin 'perceiver' (ablate-perceiver 0.2) did not load: failed to import: ImportError: needs einops"
            in message)
    assert f"Plugin 'example_connector' (ablate-example-connector {FAKE_VERSION}) is disabled by {DISABLE_ENV}" in message


def test_entries_of_a_plugin_are_labelled_with_its_distribution_by_default(site, capsys):
    site.add_module(f"{TEST_MODULE_PREFIX}unlabelled", """
        from ablate.hookspecs import hookimpl
        from ablate.registry import ComponentConfig

        @hookimpl
        def ablate_register(registries):
            registries.connector.register("unlabelled", ComponentConfig, lambda config, **ctx: None)
    """)
    site.add_dist("ablate-unlabelled", "1.0", {"unlabelled": f"{TEST_MODULE_PREFIX}unlabelled"})
    entry = registries().connector.get("unlabelled")
    assert entry.plugin == "ablate-unlabelled" and entry.origin.endswith("(plugin ablate-unlabelled)")
    assert registries().connector.get("mlp").plugin == "ablate"
    from ablate.cli import main

    assert main(["list", "connector"]) == 0
    assert "[plugin ablate-unlabelled]" in capsys.readouterr().out


class _NoTokens:
    pass


def _module_without_tokens(config, **ctx):
    from torch import nn

    return nn.Linear(2, 2)


def _raises(config, **ctx):
    raise ValueError("heads must divide in_dim")


BROKEN_BUILDS = {  # kind, builder, build arguments, what the error says
    "raises": ("connector", _raises, {}, "failed to build: ValueError: heads must divide in_dim"),
    "wrong_arguments": ("connector", lambda config, input_dim: None, {"in_dim": 2},
                        "failed to build: TypeError: "),
    "none": ("connector", lambda config, **ctx: None, {}, "built None, which breaks the connector contract: "
                                                         "a connector is a torch.nn.Module"),
    "not_a_module": ("connector", lambda config, **ctx: _NoTokens(), {}, "a connector is a torch.nn.Module"),
    "no_num_output_tokens": ("connector", _module_without_tokens, {},
                             "num_output_tokens must be a positive int attribute set when it is built, got None"),
    "encoder_without_members": ("encoder", _module_without_tokens, {}, "it lacks feature_dim, num_tokens"),
    "llm_not_loaded": ("llm", lambda config: object(), {}, "LoadedLLM(model, tokenizer)"),
    "source_not_a_datasource": ("data_source", lambda config, **ctx: [], {}, "ablate.data.contracts.DataSource"),
    "template_none": ("template", lambda config: None, {}, "it lacks render, render_prompt, encode"),
    "evaluator_none": ("evaluator", lambda config: None, {}, "it lacks judge, score"),
    "answer_format_wrong": ("answer_format", lambda config: _NoTokens(), {}, "an answer format has key (str)"),
}


@pytest.mark.parametrize("case", BROKEN_BUILDS)
def test_plugin_builder_failures_name_the_plugin(site, case):
    from ablate.errors import PluginError

    kind, builder, arguments, what = BROKEN_BUILDS[case]
    regs = registries()
    regs[kind].register("broken", ComponentConfig, builder, plugin="ablate-broken")
    with pytest.raises(PluginError) as info:
        regs[kind].get("broken").build({}, **arguments)
    assert str(info.value).startswith(f"{kind} 'broken' (plugin ablate-broken) "), str(info.value)
    assert what in str(info.value)


def test_builtin_builder_errors_stay_tracebacks():
    """A built-in's exception is ablate's bug: it is not dressed up as a plugin's."""
    regs_ = Registry("connector")
    regs_.register("mine", ComponentConfig, _raises)
    with pytest.raises(ValueError, match="heads must divide"):
        regs_.get("mine").build({})


def test_malformed_samples_are_named_with_their_source_and_plugin(site):
    from ablate.data.contracts import DataSource
    from ablate.errors import DataError

    good = {"id": "a", "image": None, "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    bad = {
        "not_a_dict": ("text", "sample #1 is a str, not a dict"),
        "no_conversations": ({"id": "b"}, "sample #1 (id 'b') has no 'conversations'"),
        "no_id": ({**good, "id": None}, "sample #1 has no 'id'"),
        "turn_keys": ({**good, "conversations": [{"role": "user", "content": "hi"}]}, "sample #1 (id 'a') has a turn {'role': 'user'"),
        "image_not_a_path": ({**good, "image": 3}, "sample #1 (id 'a') has an 'image' that is a int, not a path"),
    }
    regs = registries()
    for case, (sample, what) in bad.items():
        regs.data_source.register(case, ComponentConfig, lambda config, _s=sample, _c=case, **ctx: DataSource(
            _c, "fp", lambda: iter([good, _s])), plugin="ablate-shapes")
        source = regs.data_source.get(case).build({})
        with pytest.raises(DataError) as info:
            source.samples()
        assert f"data source '{case}' (plugin ablate-shapes): {what}" in str(info.value), str(info.value)


def test_template_encode_results_are_checked_where_they_are_made():
    from ablate.data.pipeline import Encode
    from ablate.errors import DataError

    class Mismatched:
        name = "chat_lite"

        def __init__(self, result):
            self.result = result

        def encode(self, conversations, tokenizer, *, sample_id=None, max_length=None):
            return self.result

    for result, what in (([1, 2, 3], "must return (input_ids, labels), got a list"),
                         (([1, 2, 3], [1, 2]), "returned 3 input_ids but 2 labels")):
        with pytest.raises(DataError, match=r"template 'chat_lite' \(.*\), sample 's1': encode\(\) " + re.escape(what)):
            Encode(Mismatched(result), None, None, skip=True).encode("s1", [])


@pytest.mark.parametrize("metrics, what", [
    ({"accuracy": float("nan")}, "'accuracy': nan"),
    ({"accuracy": "high"}, "'accuracy': 'high'"),
    ({"accuracy": None}, "'accuracy': None"),
    (None, "must return a non-empty dict"),
    ({}, "must return a non-empty dict"),
])
def test_evaluator_scores_must_be_finite_numbers(metrics, what):
    from ablate.errors import AblateError
    from ablate.eval.contracts import EvaluatorBase, checked_metrics

    class Scores(EvaluatorBase):
        pass

    with pytest.raises(AblateError, match=r"evaluator .*Scores: score\(\) " if metrics else "Scores") as info:
        checked_metrics(metrics, Scores())
    assert what in str(info.value)
    import numpy as np

    assert checked_metrics({"accuracy": np.float32(0.5), "n": 3}, Scores()) == {"accuracy": 0.5, "n": 3.0}


def test_list_shows_a_plugin_config_s_types_as_a_recipe_author_writes_them(site, capsys):
    from pydantic import Field

    from ablate.cli import main
    from ablate.config_model import NonBlank
    from ablate.recipe.component import Component

    class TemperatureConfig(ComponentConfig):
        sources: list[Component("data_source")] = Field(min_length=1)
        fallback: Component("data_source") | None = None
        weights_file: NonBlank | None = Field(None, description="per-source weights")

    registries().mixture.register("temperature", TemperatureConfig, lambda config, **ctx: None, plugin="ablate-mix")
    assert main(["list", "mixture"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "sources: list[data_source block] = required" in out
    assert "fallback: data_source block | None = None" in out
    assert "weights_file: str | None = None # per-source weights" in out
    assert " at 0x" not in out and "Annotated" not in out and "Validator" not in out
