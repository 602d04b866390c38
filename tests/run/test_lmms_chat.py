"""The lmms-eval model `ablate` (ablate.run.lmms_chat) called as lmms-eval calls it: loglikelihood
against a plain forward pass, multi-round generation against ablate's own generation, and the
pieces (messages -> turns, stop strings, sampling settings)."""

from __future__ import annotations

import pytest
import torch
from lmms_eval.api.instance import Instance

import lmms_parts
from ablate.errors import AblateError, DataError
from ablate.run.lmms_chat import AblateChat, sampling_kwargs
from ablate.run.lmms_prompts import cut_at, prompt_from_messages, user_messages


@pytest.fixture(scope="module")
def loaded(lmms_run):
    from ablate.run.trained import load_trained

    return load_trained(lmms_run[3].run_dir)


def _with_docs(model):
    model.task_dict = {"t": {"test": [{"image": path, "question": q} for path, q, _ in lmms_parts.items()]}}
    return model


@pytest.fixture(scope="module")
def chat(loaded):
    """The trained tiny run behind the lmms-eval API; the easy-VQA items as task "t"'s documents."""
    return _with_docs(AblateChat.around(loaded.vlm, loaded.recipe, batch_size=3))


def _request(kind: str, args: tuple, doc_id: int = 0) -> Instance:
    return Instance(request_type=kind, arguments=args, idx=0, metadata={"task": "t", "doc_id": doc_id, "repeats": 1})


def _manual_loss(model, image, context: str, continuation: str) -> tuple[float, bool]:
    """One unpadded forward of prompt + continuation: the mean of the continuation tokens' negative
    log-probabilities, each read at the position before it (after the image's visual tokens)."""
    from ablate.data.aspect_ratio import pixel_values
    from ablate.data.images import load_image
    from ablate.templates.base import tokenize_with_image

    vlm, turns = model.model, [{"from": "human", "value": f"<image>\n{context}" if image else context}]
    prompt = model.template.render_prompt(turns)
    n_prompt = len(tokenize_with_image(prompt, vlm.tokenizer).ids)
    ids = tokenize_with_image(prompt + continuation, vlm.tokenizer).ids
    pixels = pixel_values([load_image(image, "x")], vlm.image_processor, model.image_aspect_ratio) if image else None
    with torch.inference_mode():
        logits = vlm(input_ids=torch.tensor([ids]), pixel_values=pixels).logits[0].float()
    shift = vlm.connector.num_output_tokens - 1 if image else 0  # the placeholder became that many tokens
    logprobs = torch.log_softmax(logits, dim=-1)
    positions = [shift + n - 1 for n in range(n_prompt, len(ids))]
    total = sum(float(logprobs[p, ids[p - shift + 1]]) for p in positions)
    greedy = all(int(logprobs[p].argmax()) == ids[p - shift + 1] for p in positions)
    return -total / len(positions), greedy


def _as_the_evaluator_reads(outputs):
    from lmms_eval.api.instance import unwrap_generation_output

    return [unwrap_generation_output(output)[0] for output in outputs]


def test_loglikelihood_is_the_continuations_mean_loss_as_lmms_evals_llava_models_return_it(chat):
    docs = chat.task_dict["t"]["test"]
    cases = [(0, True, " no"), (1, True, " yes"), (2, False, " red triangle"), (3, True, " no")]  # 4 > batch of 3
    requests = [_request("loglikelihood", (docs[i]["question"], text,
                                           (lambda d: [d["image"]]) if image else (lambda d: []), i, "t", "test"), i)
                for i, image, text in cases]
    scores = _as_the_evaluator_reads(chat.loglikelihood(requests))
    for (i, image, text), (loss, greedy) in zip(cases, scores):
        expected, expected_greedy = _manual_loss(chat, docs[i]["image"] if image else None, docs[i]["question"], text)
        assert loss == pytest.approx(expected, abs=1e-4) and greedy == expected_greedy
    assert scores[0][1] and not scores[1][1]  # the model answers "no" to everything: " no" is greedy


def test_loglikelihood_reads_doc_to_target(chat):
    doc = chat.task_dict["t"]["test"][0]
    direct = chat.loglikelihood([_request("loglikelihood", (doc["question"], " no", lambda d: [d["image"]], 0, "t", "test"))])
    target = chat.loglikelihood([_request("loglikelihood", (doc["question"], lambda d: " no", lambda d: [d["image"]],
                                                            0, "t", "test"))])
    assert direct == target


def test_multi_round_follows_the_tasks_rounds_with_ablates_generation(chat):
    from ablate.data.collate import EvalCollator
    from ablate.eval.evaluators import ExactMatchEvaluator
    from ablate.eval.generation import generate_records

    seen = []

    def doc_to_messages(doc, round_idx=None, previous_output=None, previous_round_info=None):
        seen.append((round_idx, previous_output, previous_round_info))
        first = [{"role": "user", "content": [{"type": "image", "url": doc["image"]}, {"type": "text", "text": doc["question"]}]}]
        if round_idx is None:
            return first
        if round_idx == 1:
            follow = [{"role": "assistant", "content": [{"type": "text", "text": previous_output[0]}]},
                      {"role": "user", "content": [{"type": "text", "text": "is it red?"}]}]
            return first + follow, False, previous_output, {"asked": 1}
        return None, True, previous_output, previous_round_info

    args = ("", doc_to_messages, {"max_new_tokens": 6, "until": ["\n\n"]}, 0, "t", "test")
    (outputs,) = chat.generate_until_multi_round([_request("generate_until_multi_round", args)])
    doc = chat.task_dict["t"]["test"][0]
    turns = [{"from": "human", "value": f"<image>\n{doc['question']}"}, {"from": "gpt", "value": outputs[0]},
             {"from": "human", "value": "is it red?"}]
    samples = [{"id": "r0", "image": doc["image"], "conversations": turns[:1]},
               {"id": "r1", "image": doc["image"], "conversations": turns}]
    vlm = chat.model
    records = [generate_records(vlm, [s], template=chat.template, evaluator=ExactMatchEvaluator(), tokenizer=vlm.tokenizer,
                                collator=EvalCollator(vlm.tokenizer, vlm.image_processor), batch_size=1,
                                max_new_tokens=6)[0] for s in samples]
    assert outputs == [r["prediction"] for r in records]
    assert seen == [(None, None, None), (1, [outputs[0]], None), (2, outputs, {"asked": 1})]


def test_the_simple_model_reads_simple_requests_as_the_chat_model_reads_chat_ones(chat, loaded):
    from ablate.run.lmms_chat import AblateSimple

    simple = _with_docs(AblateSimple.around(loaded.vlm, loaded.recipe, batch_size=3))
    docs, settings = chat.task_dict["t"]["test"], {"max_new_tokens": 5, "until": ["\n\n"]}
    chat_requests = [_request("generate_until", ("", lambda d: user_messages([d["image"]], d["question"]), settings,
                                                 n, "t", "test"), n) for n in range(4)]
    simple_requests = [_request("generate_until", (docs[n]["question"], settings, lambda d: [d["image"]], n, "t", "test"), n)
                       for n in range(4)]
    answers = chat.generate_until(chat_requests)
    assert simple.generate_until(simple_requests) == answers and all(answers)


def test_a_task_naming_no_until_keeps_the_whole_answer(chat, monkeypatch):
    """MM-Vet's YAML names no `until`, so lmms-eval gives it "\\n\\n"; LLaVA's evaluation and lmms-eval's
    llava and llava_hf models keep an answer's later paragraphs, and so does the ablate model."""
    from lmms_eval.api.task import TaskConfig

    import ablate.eval.generation

    mmvet = TaskConfig(task="mmvet", output_type="generate_until", generation_kwargs={
        "max_new_tokens": 8, "temperature": 0.2, "top_p": 1.0, "num_beams": 1, "do_sample": False}).generation_kwargs
    assert mmvet["until"] == ["\n\n"]
    monkeypatch.setattr(ablate.eval.generation, "generated_texts",
                        lambda *args, **kwargs: ["A red circle.\n\nIt is large.</s>"])
    prompt = prompt_from_messages(user_messages([lmms_parts.items()[0][0]], "Describe it."), "mmvet 0")
    assert chat.generate([prompt], mmvet, ["mmvet 0"]) == ["A red circle.\n\nIt is large."]
    assert chat.generate([prompt], {**mmvet, "until": ["\n\n", "Q:"]}, ["mmvet 0"]) == ["A red circle."]


def test_messages_become_llava_turns():
    messages = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": [{"type": "image", "url": "a.png"}, {"type": "text", "text": "What?"}]},
                {"role": "user", "content": [{"type": "text", "text": "Say it."}]},
                {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}]
    prompt = prompt_from_messages(messages, "task 't', document 0")
    assert prompt.image == "a.png"
    assert prompt.turns == [{"from": "human", "value": "Be brief.\n<image>\nWhat?\nSay it."},
                            {"from": "gpt", "value": "A cat."}]
    assert prompt_from_messages(user_messages([], "Hi"), "x").turns == [{"from": "human", "value": "Hi"}]


@pytest.mark.parametrize("content, message", [
    ([{"type": "image", "url": "a.png"}, {"type": "image", "url": "b.png"}], "2 images in one request"),
    ([{"type": "video", "url": "a.mp4"}], "a video input; ablate's models read images and text only"),
])
def test_what_ablates_models_cannot_read_is_named(content, message):
    with pytest.raises(DataError, match=f"lmms-eval task 'mmvet', document 3: {message}"):
        prompt_from_messages([{"role": "user", "content": content}], "lmms-eval task 'mmvet', document 3")


def test_generation_settings():
    assert cut_at("yes\n\nno", ["\n\n", "Q:"]) == "yes" and cut_at("a. b", ".") == "a" and cut_at("ab", None) == "ab"
    assert cut_at("yes\n\nno", ["\n\n"]) == "yes\n\nno"  # lmms-eval's default for a task naming no `until`
    assert sampling_kwargs({"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "num_beams": 1}) == {}
    assert sampling_kwargs({"temperature": 0.2, "do_sample": False}) == {}  # MM-Vet's settings: greedy
    assert sampling_kwargs({"temperature": 0.7, "top_p": 0.9}) == {"do_sample": True, "temperature": 0.7, "top_p": 0.9}
    assert sampling_kwargs({"num_beams": 3}) == {"num_beams": 3}


def test_the_model_needs_a_run_folder_or_a_live_model():
    with pytest.raises(AblateError, match="needs pretrained=<run folder>"):
        AblateChat()
    with pytest.raises(AblateError, match="not a folder"):
        AblateChat(pretrained="/nonexistent/run")
