"""The lmms-eval model `ablate`: an ablate VisionLanguageModel behind lmms-eval's model API.

    lmms-eval --model ablate --model_args pretrained=RUN_DIR --tasks gqa,mme
    simple_evaluate(model=AblateChat.around(vlm, recipe), tasks=[...])   # ablate's in-run evaluation

`pretrained=` loads a finished run folder (`ablate.run.trained`); `around` wraps a live model, so
evaluating after training loads no second copy. Prompts go through the recipe's evaluation
template (eval.template, else the last stage's), images through the collator with the recipe's
image_aspect_ratio: the ids and pixels ablate's own evaluation feeds for the same conversation.

Generation follows each task's generation_kwargs: max_new_tokens (default `max_new_tokens`,
1024 as lmms-eval's models), `until` stop strings (not lmms-eval's "\\n\\n" default for a
task that names none: `lmms_prompts.task_stops`), num_beams; it samples only with do_sample
(absent: temperature > 0), as transformers does, and is greedy otherwise. Requests with equal
generation_kwargs are generated in batches of `batch_size`, in document order.

`AblateChat` is the chat model lmms-eval uses by default. lmms-eval 0.7.3 builds loglikelihood
requests (multiple_choice tasks) only for simple models: `AblateSimple`, the same model reading
simple-model requests, is what `--force_simple` loads.
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.model import lmms
from lmms_eval.utils import Collator

from ablate.errors import AblateError
from ablate.run.lmms_prompts import Prompt, cut_at, prompt_from_messages, user_messages

DEFAULT_MAX_NEW_TOKENS = 1024


class AblateChat(lmms):
    is_simple = False

    def __init__(self, pretrained: str | None = None, batch_size: int | str = 1, device: str | None = None,
                 dtype: str | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 max_batch_size: int | None = None, *, live: tuple[Any, Any] | None = None) -> None:
        """`pretrained`: a run folder; `live`: (VisionLanguageModel, its Recipe) for in-run use.
        `max_batch_size` is lmms-eval's automatic batch sizing, which this model does not do."""
        super().__init__()
        allow_filelock_4()
        if (pretrained is None) == (live is None):
            raise AblateError("the ablate lmms-eval model needs pretrained=<run folder> (--model_args), "
                              "or a live model from ablate's own evaluation, and not both")
        vlm, recipe = live if live is not None else _load_run(pretrained, device, dtype)
        from ablate.run.evaluation import eval_template

        self.model = vlm
        self.template = eval_template(recipe)
        self.image_aspect_ratio = recipe.eval_aspect_ratio()
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.max_new_tokens = _positive_int(max_new_tokens, "max_new_tokens")

    @classmethod
    def around(cls, vlm, recipe, *, batch_size: int = 1, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS):
        """The model for a VLM in memory (ablate's in-run evaluation)."""
        return cls(batch_size=batch_size, max_new_tokens=max_new_tokens, live=(vlm, recipe))

    @property
    def device(self):
        return self.model.device

    @property
    def tokenizer(self):
        return self.model.tokenizer

    # --- requests -> prompts --------------------------------------------------------------------

    def _doc(self, task: str, split: str, doc_id: int) -> dict[str, Any]:
        return self.task_dict[task][split][doc_id]

    def request_prompt(self, args: tuple) -> tuple[Prompt, dict[str, Any], str]:
        """(the prompt, the generation kwargs, an id naming task and document) of a generate request:
        (context, doc_to_messages, generation_kwargs, doc_id, task, split) for a chat model."""
        _, doc_to_messages, gen_kwargs, doc_id, task, split = args
        at = f"lmms-eval task {task!r}, document {doc_id}"
        return prompt_from_messages(doc_to_messages(self._doc(task, split, doc_id)), at), dict(gen_kwargs or {}), at

    def collator(self):
        from ablate.data.collate import EvalCollator

        return EvalCollator(tokenizer=self.tokenizer, image_processor=self.model.image_processor,
                            image_aspect_ratio=self.image_aspect_ratio)

    # --- lmms-eval's API ------------------------------------------------------------------------

    def generate_until(self, requests) -> list[str]:
        items = [(n, *self.request_prompt(r.args)) for n, r in enumerate(requests)]
        # lmms-eval's Collator: batches of equal generation_kwargs, in request (document) order
        order = Collator(items, sort_fn=lambda item: item[0], group_fn=lambda item: item[2],
                         grouping=True)
        texts = []
        for chunk in order.get_batched(n=self.batch_size):
            texts += self.generate([p for _, p, _, _ in chunk], chunk[0][2], [at for _, _, _, at in chunk])
        return order.get_original(texts)

    def generate(self, prompts: list[Prompt], gen_kwargs: dict[str, Any], ids: list[str]) -> list[str]:
        """One batch: each prompt's answer, cut at the `until` strings and the template's stop."""
        import torch

        from ablate.eval.generation import generated_texts

        rows = [p.row(self.template, self.tokenizer, at) for p, at in zip(prompts, ids)]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                texts = generated_texts(self.model, rows, collator=self.collator(), tokenizer=self.tokenizer,
                                        max_new_tokens=int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens),
                                        **sampling_kwargs(gen_kwargs))
        finally:
            self.model.train(was_training)
        return [self.template.clean_prediction(cut_at(t, gen_kwargs.get("until"))) for t in texts]

    def generate_until_multi_round(self, requests) -> list[list[str]]:
        """lmms-eval's multi-round protocol: round 0 asks doc_to_messages(doc); each later round
        asks it again with round_idx, the outputs so far and the task's round info, until it
        answers terminal. Each round's messages are the whole prompt of that round."""
        results = []
        for request in requests:
            _, doc_to_messages, gen_kwargs, doc_id, task, split = request.args
            doc, at = self._doc(task, split, doc_id), f"lmms-eval task {task!r}, document {doc_id}"
            outputs: list[str] = []
            messages, info = doc_to_messages(doc), None
            while messages is not None:
                round_at = f"{at}, round {len(outputs)}"
                outputs += self.generate([prompt_from_messages(messages, round_at)], dict(gen_kwargs or {}), [round_at])
                payload = doc_to_messages(doc, round_idx=len(outputs), previous_output=list(outputs),
                                          previous_round_info=info)
                if not (isinstance(payload, tuple) and len(payload) == 4) or payload[1]:
                    break
                messages, _, _, info = payload
            results.append(outputs)
        return results

    def loglikelihood(self, requests) -> list[Any]:
        """(the continuation's mean token loss after the context, whether greedy decoding gives it)
        per request: (context, continuation or doc_to_target, doc_to_visual, doc_id, task, split).
        A loss, not a summed log-probability (lm-evaluation-harness's convention): lmms-eval's own
        LLaVA models (llava, llava_hf) return the loss of their forward on the continuation, and
        lmms-eval 0.7's multiple_choice scoring picks the option with the lowest value to match
        (argmin), where a log-probability would make it pick the least likely option."""
        from ablate.run.lmms_scoring import continuation_scores

        items = [self.loglikelihood_item(r.args) for r in requests]
        scores = continuation_scores(self.model, items, template=self.template, batch_size=self.batch_size,
                                     image_aspect_ratio=self.image_aspect_ratio)
        return through_the_evaluator([(score.mean_loss, score.greedy) for score in scores])

    def loglikelihood_item(self, args: tuple) -> tuple[Prompt, str, str]:
        if len(args) == 2:
            raise AblateError("the ablate lmms-eval model scores a continuation after a chat prompt; lmms-eval's "
                              "unconditional requests (metric acc_mutual_info) have none")
        context, continuation, doc_to_visual, doc_id, task, split = args
        doc, at = self._doc(task, split, doc_id), f"lmms-eval task {task!r}, document {doc_id}"
        visuals = doc_to_visual(doc) if callable(doc_to_visual) else []
        target = continuation(doc) if callable(continuation) else continuation
        return prompt_from_messages(user_messages(visuals, context), at), str(target), at


class AblateSimple(AblateChat):
    """The same model for lmms-eval's simple-model requests (`--force_simple`): generate requests
    are (context, generation_kwargs, doc_to_visual, doc_id, task, split)."""

    is_simple = True

    def request_prompt(self, args: tuple) -> tuple[Prompt, dict[str, Any], str]:
        context, gen_kwargs, doc_to_visual, doc_id, task, split = args
        at = f"lmms-eval task {task!r}, document {doc_id}"
        visuals = doc_to_visual(self._doc(task, split, doc_id)) if callable(doc_to_visual) else []
        return prompt_from_messages(user_messages(visuals, context), at), dict(gen_kwargs or {}), at

    def generate_until_multi_round(self, requests) -> list[list[str]]:
        raise AblateError("multi-round tasks need the chat model: run lmms-eval without --force_simple")


def through_the_evaluator(scores: list[tuple[float, bool]]) -> list[Any]:
    """The (mean loss, is_greedy) scores in a form lmms-eval's evaluator hands on intact.
    lmms-eval 0.7.3 passes every model output through `unwrap_generation_output`, which turns a
    tuple into its str(); a multiple_choice task then fails unpacking the strings. Its
    `GenerationResult` comes through as whatever it holds, so where the function would turn the
    tuple into text, each score goes out inside one (lmms-eval reads it back as the tuple)."""
    from lmms_eval.api.instance import GenerationResult, unwrap_generation_output

    if unwrap_generation_output((0.0, True))[0] == (0.0, True):
        return scores
    return [GenerationResult(text=score) for score in scores]


def sampling_kwargs(gen_kwargs: dict[str, Any]) -> dict[str, Any]:
    """VisionLanguageModel.generate's sampling arguments for lmms-eval generation_kwargs ({} is greedy)."""
    temperature = float(gen_kwargs.get("temperature") or 0.0)
    out: dict[str, Any] = {}
    if int(gen_kwargs.get("num_beams") or 1) > 1:
        out["num_beams"] = int(gen_kwargs["num_beams"])
    if bool(gen_kwargs.get("do_sample", temperature > 0)) and temperature > 0:
        out.update(do_sample=True, temperature=temperature)
        if gen_kwargs.get("top_p") is not None:
            out["top_p"] = float(gen_kwargs["top_p"])
    return out


def allow_filelock_4() -> None:
    """lmms-eval 0.7.3's simple_evaluate, after building the model, patches filelock 3's private
    `filelock._api` (a workaround for datasets' nested locks under filelock 3.16+'s deadlock check)
    and fails on filelock 4, which has no such module and which ablate's environment may hold.
    Where it is absent, mark lmms-eval's patch as applied so that the evaluation runs."""
    import importlib.util

    if importlib.util.find_spec("filelock._api") is None:
        from lmms_eval.evaluator import _enable_reentrant_filelocks

        _enable_reentrant_filelocks._patched = True


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise AblateError(f"the ablate lmms-eval model: {name} must be a positive whole number, got {value!r}")
    return number


def _load_run(run_dir: str, device: str | None, dtype: str | None):
    """(the run's trained VLM on `device`, its recipe); default device: a GPU when there is one."""
    import torch

    from ablate.run.trained import load_trained

    torch_dtype = None
    if dtype is not None:
        torch_dtype = getattr(torch, str(dtype), None)
        if not isinstance(torch_dtype, torch.dtype):
            raise AblateError(f"the ablate lmms-eval model: dtype {dtype!r} is not a torch dtype (e.g. bfloat16)")
    trained = load_trained(run_dir, dtype=torch_dtype)
    trained.vlm.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return trained.vlm, trained.recipe
