"""Plugins that misbehave while loading: each is warned about (naming its package and entry
point) and skipped, and the command still does its work. Installed for real: a dist-info folder
with entry_points.txt on the subprocess's sys.path, as pip would leave it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from bad_input_helpers import good_recipe, tiny_run, write

PLUGINS = {
    "exits": "import sys\nsys.exit(3)\n",
    "exits_quietly": "import sys\nsys.exit()\n",
    "raises_base": "class Boom(BaseException):\n    pass\n\nraise Boom('at import')\n",
    "raises_import": "import no_such_module_for_ablate\n",
    "register_exits": """
        import sys
        from ablate.hookspecs import hookimpl

        @hookimpl
        def ablate_register(registries):
            registries.connector.register("half_registered", builder=lambda config, **kw: None)
            sys.exit("refusing")
        """,
    "register_raises_base": """
        from ablate.hookspecs import hookimpl

        class Stop(BaseException):
            pass

        @hookimpl
        def ablate_register(registries):
            raise Stop("in the hook")
        """,
    "wrong_hook": """
        from ablate.hookspecs import hookimpl

        @hookimpl
        def ablate_register(registries, extra):
            pass
        """,
}

EXPECTED = {
    "exits": "failed to import: it called sys.exit(3)",
    "exits_quietly": "failed to import: it called sys.exit(None)",
    "raises_base": "failed to import: Boom: at import",
    "raises_import": "failed to import: ModuleNotFoundError",
    "register_exits": "failed to register: it called sys.exit('refusing')",
    "register_raises_base": "failed to register: Stop: in the hook",
    "wrong_hook": "is not a valid ablate plugin",
}


def install_plugins(site) -> None:
    for name, code in PLUGINS.items():
        write(site / f"badplug_{name}.py", textwrap.dedent(code))
    info = site / "badplug-0.1.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: badplug\nVersion: 0.1\n")
    write(info / "entry_points.txt", "[ablate]\n" + "".join(f"{n} = badplug_{n}\n" for n in PLUGINS))


def ablate(site, *args):
    env = tiny_run.cli_env(COLUMNS="10000")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(tiny_run.REPO), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "ablate.cli", *map(str, args)], cwd=tiny_run.REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_failing_plugin_is_named_and_the_command_still_runs(tmp_path):
    site = tmp_path / "site"
    install_plugins(site)
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    done = ablate(site, "validate", recipe)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == 0, output
    assert "is valid" in done.stdout
    flat = " ".join(done.stderr.split())
    for name, what in EXPECTED.items():
        assert f"plugin {name!r} (package badplug 0.1, entry point 'badplug_{name}') {what}" in flat, flat
    listed = ablate(site, "list", "connector")
    assert listed.returncode == 0 and "mlp" in listed.stdout
    assert "half_registered" not in listed.stdout  # a failed plugin's partial registrations are removed


BUILD_FAILURE = """
    from ablate.hookspecs import hookimpl
    from ablate.registry import ComponentConfig

    def build_boom(config, in_dim, out_dim, num_input_tokens):
        raise ValueError("heads must divide in_dim")

    @hookimpl
    def ablate_register(registries):
        registries.connector.register("boom", ComponentConfig, build_boom)
    """


def test_a_plugin_connector_that_fails_to_build_is_one_message_naming_it(tmp_path):
    """No `plugin=` given: the loader labels it with its distribution; the run stops before training."""
    site = tmp_path / "site"
    write(site / "boomplug.py", textwrap.dedent(BUILD_FAILURE))
    write(site / "boomplug-0.3.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: boomplug\nVersion: 0.3\n")
    write(site / "boomplug-0.3.dist-info" / "entry_points.txt", "[ablate]\nboom = boomplug\n")
    data = good_recipe(tmp_path)
    data["model"]["connector"] = {"type": "boom"}
    tiny_run.prepare_store(tmp_path)
    done = ablate(site, "run", write(tmp_path / "recipe.yaml", data))
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == 2, output
    flat = " ".join(done.stderr.split())
    assert ("error: model.connector: connector 'boom' (plugin boomplug) failed to build: "
            "ValueError: heads must divide in_dim") in flat, flat


def test_a_connector_returning_a_non_tensor_is_named_when_the_model_is_built():
    import pytest
    import torch
    from vlm_parts import TinyClipEncoder, tiny_llm

    from ablate.errors import AblateError
    from ablate.model.vlm import VisionLanguageModel

    class TupleOut(torch.nn.Linear):
        num_output_tokens = 16

        def forward(self, x):
            return (super().forward(x),)

    with pytest.raises(AblateError, match=r"connector 'TupleOut' returned a tuple, not a tensor, but the splice needs"):
        VisionLanguageModel(TinyClipEncoder(), TupleOut(8, 16), tiny_llm())
