"""Recipes that parse but must not validate: non-finite and out-of-range numbers, booleans for
numbers, names that escape output_dir, unusable output folders and tracking URIs, recipes with
nothing to run, misspelt component names, and malformed `-s` overrides."""

from __future__ import annotations

from typing import Any

import pytest

from bad_input_helpers import assert_rejected, cli, good_recipe, write

LORA = {"lora": {"r": 4}}


def put(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    node: Any = data
    for key in parents:
        node = node[key] if isinstance(node, list) else node.setdefault(key, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


DELETE = object()
INF, NAN = float("inf"), float("nan")

# (YAML path, value, words the message must contain besides the path and the file)
VALUES = [
    # non-finite numbers, in every kind of section
    ("stages.0.lr", INF, ["finite"]),
    ("stages.0.lr", NAN, ["finite"]),
    ("stages.0.lr", -INF, ["finite"]),
    ("stages.0.lr", "1e400", ["finite"]),
    ("stages.0.lr", 1e308 * 10, ["finite"]),
    ("stages.0.epochs", INF, ["finite"]),
    ("stages.0.epochs", NAN, ["finite"]),
    ("stages.0.connector_lr", INF, ["finite"]),
    ("stages.0.weight_decay", INF, ["finite"]),
    ("stages.0.warmup_ratio", NAN, ["finite"]),
    ("stages.0.batch_size", INF, []),
    ("seed", INF, ["finite"]),
    ("eval.max_new_tokens", NAN, ["finite"]),
    ("model.connector", {"type": "qformer", "num_queries": 8, "dropout": NAN}, ["finite"]),
    ("stages.0.trainable.llm", {"lora": {"r": 4, "lora_dropout": NAN}}, ["finite"]),
    ("stages.0.data.sources.0.weight", INF, ["finite"]),
    ("stages.0.data.sources.0.fraction", NAN, ["finite"]),
    ("stages.0.data.sources.0.data_types", {"caption": NAN}, ["finite"]),
    # ranges
    ("stages.0.warmup_ratio", 1.0, ["less than 1"]),
    ("stages.0.warmup_ratio", 1.5, ["less than 1"]),
    ("stages.0.warmup_ratio", -0.1, ["greater than or equal to 0"]),
    ("stages.0.max_length", -5, ["greater than 0"]),
    ("stages.0.batch_size", 0, ["greater than 0"]),
    ("stages.0.grad_accum", 0, ["greater than 0"]),
    ("stages.0.max_steps", 0, ["-1", "positive"]),
    ("stages.0.max_steps", -7, ["-1", "positive"]),
    ("stages.0.lr", 0, ["greater than 0"]),
    ("stages.0.batch_size", 10**30, ["too large"]),
    ("seed", -1, ["greater than or equal to 0"]),
    ("seed", 2**32, ["less than"]),
    ("stages.0.seed", -3, ["greater than or equal to 0"]),
    ("stages.0.trainable.llm", {"lora": {"r": 0}}, ["greater than 0"]),
    ("stages.0.trainable.llm", {"lora": {"r": 4, "lora_alpha": 0}}, ["greater than 0"]),
    ("stages.0.trainable.llm", {"lora": {"r": 4, "target_modules": []}}, ["at least 1"]),
    ("eval.limit", 0, ["greater than 0"]),
    ("eval.batch_size", -1, ["greater than 0"]),
    ("data.num_proc", 2, ["unknown key 'num_proc'"]),  # tokenized as read: no up-front worker pool
    ("model.init_connector", "", ["empty or only spaces"]),
    ("model.connector", {"type": "mlp", "depth": 0}, []),
    # layer counts nobody means: building them, even on the meta device for `ablate plan`, hangs
    ("model.connector", {"type": "mlp", "depth": 100_000}, ["less than or equal to 256"]),
    ("model.connector", {"type": "qformer", "num_layers": 10**8}, ["less than or equal to 256"]),
    ("model.connector", {"type": "resampler", "depth": 10**8}, ["less than or equal to 256"]),
    # booleans given for numbers
    ("stages.0.batch_size", True, ["boolean"]),
    ("stages.0.epochs", True, ["boolean"]),
    ("stages.0.lr", False, ["boolean"]),
    ("model.connector.depth", True, ["boolean"]),
    ("eval.limit", True, ["boolean"]),
    # names that would leave output_dir
    ("name", "../escape", ["cannot name a folder"]),
    ("name", "a/b", ["cannot name a folder"]),
    ("name", "..", ["cannot name a folder"]),
    ("name", ".hidden", ["cannot name a folder"]),
    ("name", "", ["cannot name a folder"]),
    ("name", "/abs", ["cannot name a folder"]),
    ("name", "x" * 300, ["at most 100"]),
    ("stages.0.name", "..", ["cannot name a folder"]),
    ("stages.0.name", "a/b", ["cannot name a folder"]),
    # wrong component names and shapes
    ("model.connector", {"type": "mpl"}, ["unknown connector 'mpl'", "Did you mean 'mlp'"]),
    ("model.connector", [1, 2], ["expected a connector block"]),
    ("model.connector", {"depth": 2}, ["missing 'type'"]),
    ("stages.0.template", "vicuna_v2", ["Did you mean 'vicuna_v1'"]),
    ("eval.evaluator", "exact", ["Did you mean 'exact_match'"]),
    ("eval.data", {"type": "easy_vqa", "split": "dev"}, ["'train' or 'test'"]),
    ("answer_format", "QCM-XYZ", ["unknown answer_format"]),
    ("stages.0.data.sources.0.source", {"type": "llava_jsn", "path": "x.json"}, ["Did you mean 'llava_json'"]),
    ("stages.0.precision", "fp8", ["'fp32', 'bf16' or 'fp16'"]),
    ("stages.0.loss", "fast", ["'auto', 'plain', 'chunked' or 'fused'"]),
    ("stages.0.packing", "sometimes", ["boolean"]),
    ("stages.0.packing", 2, ["boolean"]),
    ("stages.0.scheduler", "cosin", ["'cosine'"]),
    ("stages.0.trainable.llm", "ful", ["'frozen' or 'full'"]),
    ("model.connector.dept", 3, ["unknown key 'dept'", "Did you mean 'depth'"]),
    ("tracking.tags", {"a": [1, 2]}, ["valid string"]),
    ("tracking.tags", {"a*b": "x"}, ["tag 'a*b'", "Names may only contain"]),
    ("tracking.experiment", "", ["empty or only spaces"]),
    # paths and names left blank: the working directory, a default, or a failure far from the recipe
    ("tracking.experiment", "   ", ["empty or only spaces"]),
    ("tracking.run_name", " ", ["empty or only spaces"]),
    ("output_dir", "", ["empty or only spaces"]),
    ("output_dir", "  ", ["empty or only spaces"]),
    ("data.cache_dir", " ", ["empty or only spaces"]),
    ("model.llm.name_or_path", "", ["empty or only spaces"]),
    ("model.encoder.name_or_path", "  ", ["empty or only spaces"]),
    ("model.llm.tokenizer", "", ["empty or only spaces"]),
    ("model.llm.attn_implementation", "", ["empty or only spaces"]),
    ("stages.0.deepspeed", "", ["empty or only spaces"]),
    ("stages.0.data.sources.0.source", {"type": "llava_json", "path": ""}, ["empty or only spaces"]),
    ("eval", {"harness": "lmms_eval", "tasks": ["mme", " "]}, ["eval.tasks.1", "empty or only spaces"]),
    ("eval", {"harness": "lmms_eval", "tasks": ["mme"], "include_path": ""}, ["eval.include_path", "empty or only spaces"]),
]

# Quoted numbers and booleans: pydantic's lax mode would take "1" as 1 and "yes" as true.
VALUES += [
    ("seed", "1", ["expected an integer", "'1'", "without quotes"]),
    ("stages.0.seed", "7", ["expected an integer"]),
    ("stages.0.batch_size", "8", ["expected an integer"]),
    ("stages.0.max_steps", " 100 ", ["expected an integer"]),
    ("eval.max_new_tokens", "3.0", ["expected an integer"]),
    ("model.connector.depth", "2", ["expected an integer"]),
    ("model.encoder.feature_layer", "-2", ["expected an integer"]),  # int | list[int]
    ("model.encoder.feature_layer", True, ["boolean"]),
    ("stages.0.trainable.llm", {"lora": {"r": "8"}}, ["expected an integer"]),
    ("stages.0.packing", "true", ["expected a boolean", "'true'"]),
    ("stages.0.packing", 1, ["expected a boolean"]),
    ("stages.0.gradient_checkpointing", "no", ["expected a boolean"]),
    ("eval.each_epoch", 0, ["expected a boolean"]),
]

# Values far past any published setting: refused, not sized by `ablate plan` or allocated by a run.
VALUES += [
    ("stages.0.epochs", 1e12, ["less than or equal to 1000"]),
    ("stages.0.epochs", "1e12", ["less than or equal to 1000"]),  # YAML 1.1 reads 1e12 as a string
    ("stages.0.max_steps", 10**12, ["less than or equal to 10000000"]),
    ("stages.0.max_length", 10**10, ["less than or equal to 131072"]),
    ("stages.0.batch_size", 10**12, ["less than or equal to 65536"]),
    ("stages.0.grad_accum", 10**12, ["less than or equal to 65536"]),
    ("stages.0.dataloader_workers", 100_000, ["less than or equal to 256"]),
    ("eval.max_new_tokens", 10**12, ["less than or equal to 32768"]),
    ("eval.batch_size", 10**9, ["less than or equal to 65536"]),
    ("model.llm.model_max_length", 10**8, ["less than or equal to 131072"]),
    ("model.connector", {"type": "qformer", "num_queries": 10**9}, ["less than or equal to 16384"]),
    ("model.connector", {"type": "resampler", "num_queries": 10**9}, ["less than or equal to 16384"]),
    ("model.connector", {"type": "qformer", "hidden_size": 2**40, "num_heads": 1}, ["less than or equal to 65536"]),
    ("model.connector", {"type": "qformer", "num_heads": 2**20, "hidden_size": 2**20}, ["less than or equal"]),
    ("model.connector", {"type": "resampler", "ff_mult": 10**6}, ["less than or equal to 64"]),
    ("model.connector", {"type": "mlp", "hidden_dim": 10**9}, ["less than or equal to 65536"]),
    ("stages.0.trainable.llm", {"lora": {"r": 10**12}}, ["less than or equal to 65536"]),
    ("stages.0.data.sources.0.weight", 1e12, ["less than or equal to 1000"]),  # was a MemoryError traceback
]


def _case_id(path: str, value: Any) -> str:
    text = repr(value) if not isinstance(value, str) or len(value) < 20 else f"str{len(value)}"
    return f"{path}={text}"


@pytest.mark.parametrize("path, value, words", [pytest.param(p, v, w, id=_case_id(p, v)) for p, v, w in VALUES])
def test_bad_value(tmp_path, capsys, path, value, words):
    data = good_recipe(tmp_path)
    put(data, path, value)
    recipe = write(tmp_path / "recipe.yaml", data)
    code, out = cli(capsys, "validate", recipe)
    assert_rejected(code, out, recipe, f"- {path}", *words)


@pytest.mark.parametrize("field", ["output_dir", "data.cache_dir"])
@pytest.mark.parametrize("below", ["", "runs"])
def test_folder_that_is_a_file(tmp_path, capsys, field, below):
    (tmp_path / "file").write_text("x")
    data = good_recipe(tmp_path)
    put(data, field, str(tmp_path / "file" / below))
    recipe = write(tmp_path / "recipe.yaml", data)
    assert_rejected(*cli(capsys, "validate", recipe), recipe, f"- {field}", f"{tmp_path / 'file'} is a file")


@pytest.mark.parametrize("uri, words", [
    ("foo://x", ["unknown scheme 'foo'"]),
    ("htp://host", ["unknown scheme 'htp'", "Did you mean 'http'"]),
    ("http://", ["needs a host"]),
    ("sqlite://mlflow.db", ["three slashes"]),
    ("mlflow.db", ["sqlite:///mlflow.db"]),
    ("", ["non-empty"]),
])
def test_tracking_uri_in_the_recipe(tmp_path, capsys, uri, words):
    data = good_recipe(tmp_path)
    data["tracking"]["tracking_uri"] = uri
    recipe = write(tmp_path / "recipe.yaml", data)
    assert_rejected(*cli(capsys, "validate", recipe), recipe, "tracking.tracking_uri", *words)


def test_tracking_uri_that_is_a_file(tmp_path, capsys):
    data = good_recipe(tmp_path)
    data["tracking"]["tracking_uri"] = str(write(tmp_path / "store", "x"))
    recipe = write(tmp_path / "recipe.yaml", data)
    assert_rejected(*cli(capsys, "validate", recipe), recipe, "tracking.tracking_uri", "this is a file")


@pytest.mark.parametrize("stages, has_eval, where, words", [
    (None, False, "stages", ["nothing to run"]),
    ([], False, "stages", ["nothing to run"]),
    ([], True, "eval.template", ["required when the recipe has no stages"]),
    (None, True, "eval.template", ["required when the recipe has no stages"]),
])
def test_recipe_that_cannot_run(tmp_path, capsys, stages, has_eval, where, words):
    data = good_recipe(tmp_path)
    if stages is None:
        del data["stages"]
    else:
        data["stages"] = stages
    if not has_eval:
        del data["eval"]
    recipe = write(tmp_path / "recipe.yaml", data)
    assert_rejected(*cli(capsys, "validate", recipe), recipe, f"- {where}", *words)


def test_mixture_item_with_two_amounts(tmp_path, capsys):
    data = good_recipe(tmp_path)
    data["stages"][0]["data"]["sources"][0].update(weight=2.0, count=2)
    recipe = write(tmp_path / "recipe.yaml", data)
    assert_rejected(*cli(capsys, "validate", recipe), recipe, "- stages.0.data.sources.0 (",
                    "at most one of weight, count, fraction")


def test_duplicate_stage_names(tmp_path, capsys):
    data = good_recipe(tmp_path)
    data["stages"].append(dict(data["stages"][0]))
    recipe = write(tmp_path / "recipe.yaml", data)
    assert_rejected(*cli(capsys, "validate", recipe), recipe, "stage names must be unique", "align")


def test_two_samplers(tmp_path, capsys):
    data = good_recipe(tmp_path)
    data["stages"][0].update(group_by_length=True, group_by_modality_length=True)
    recipe = write(tmp_path / "recipe.yaml", data)
    assert_rejected(*cli(capsys, "validate", recipe), recipe, "- stages.0 (",
                    "group_by_length and group_by_modality_length are two samplers; set at most one")


# (override, words): each malformed or wrong `-s`, named in the message.
OVERRIDES = [
    ("foo", ["bad override 'foo'", "PATH=VALUE"]),
    ("=3", ["bad override path"]),
    ("a..b=1", ["bad override path"]),
    ("stages.0.lr=[unclosed", ["bad override 'stages.0.lr=[unclosed'", "not valid YAML"]),
    ("model={a: 1, a: 2}", ["duplicate key 'a'"]),
    ("model.connector.depth=[&a [1,1,1,1,1,1,1,1,1,1], [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
     "&b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]]", ["model.connector.depth"]),
    ("model.connector.dept=3", ["unknown key 'dept'", "-s model.connector.dept=3"]),
    ("stages.9.lr=1", ["index 9 out of range"]),
    ("stages.nope.lr=1", ["no list item named 'nope'", "align"]),
    ("name.x=1", ["override 'name.x'", "cannot set a key inside str"]),
    ("x.y.z=1", ["- x (-s x.y.z=1)", "unknown key 'x'"]),  # the new key is the override's, not the file's
    ("model.connectr.depth=3", ["- model.connectr (-s model.connectr.depth=3)", "Did you mean 'connector'"]),
    ("seed=abc", ["seed", "-s seed=abc", "valid integer"]),
    ("stages.0.lr=.inf", ["stages.0.lr", "finite"]),
    ("stages.0.warmup_ratio=1", ["stages.0.warmup_ratio", "less than 1"]),
    ("name=../../etc", ["cannot name a folder"]),
    ("output_dir=/dev/null", ["/dev/null is a file"]),
    ("name=\udcff", ["not valid YAML", "'\\udcff' is not allowed"]),  # a non-UTF-8 byte in argv
]


@pytest.mark.parametrize("override, words", [pytest.param(o, w, id=o[:40]) for o, w in OVERRIDES])
def test_bad_override(tmp_path, capsys, override, words):
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    assert_rejected(*cli(capsys, "validate", recipe, "-s", override), *words)


@pytest.mark.parametrize("override, path, words", [
    ("model.encoder.feature_layer=abc", "model.encoder.feature_layer",
     "valid integer, unable to parse string as an integer; or input should be a valid list (got 'abc')"),
    ("stages.0.trainable.llm=7", "stages.0.trainable.llm", "'frozen' or 'full'; or input should be a valid dictionary"),
])
def test_a_value_that_fits_no_member_of_a_union_is_one_problem_at_its_own_path(tmp_path, capsys, override, path, words):
    """Not one problem per union member under pydantic's names for them (`feature_layer.int`, `.list[int]`)."""
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    code, out = cli(capsys, "validate", recipe, "-s", override)
    assert_rejected(code, out, f"- {path} (-s {override}): ", words, "1 problem in recipe")
    assert f"{path}." not in out


def test_plan_of_the_largest_lora_rank_takes_no_memory(tmp_path, capsys):
    """`ablate plan` builds LoRA adapters on the meta device too: the largest rank allowed is
    sized, never allocated."""
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    code, out = cli(capsys, "plan", recipe, "-s", "stages.0.trainable.llm={lora: {r: 65536}}")
    assert code == 0 and "Traceback" not in out, out
    assert "memory/GPU" in out


@pytest.mark.parametrize("override, path", [
    ("stages.0.trainable.llm={lora: {r: 0}}", "stages.0.trainable.llm.lora.r"),
    ("stages.0.trainable.llm={lora: {rr: 4}}", "stages.0.trainable.llm.lora.rr"),
])
def test_a_mapping_the_union_took_is_one_problem_inside_it(tmp_path, capsys, override, path):
    """Not also "Input should be 'frozen' or 'full'" from the union's other branch, which it never meant."""
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    code, out = cli(capsys, "validate", recipe, "-s", override)
    assert_rejected(code, out, f"- {path} (-s {override}): ", "1 problem in recipe")
    assert "'frozen' or 'full'" not in out
