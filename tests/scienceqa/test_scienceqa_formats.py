"""Answer formats: exact strings, as LLaVA's convert_sqa_to_llava.py writes them.

The expected strings below were written by hand from LLaVA's rules (see the module docstring
of ablate.scienceqa.formats) and cross-checked against LLaVA's own scripts.
"""

import pytest

from ablate.errors import AblateError
from ablate.registry import registries
from ablate.scienceqa.formats import (
    INPUT_CODES, OUTPUT_CODES, ScienceQAPrompt, get_format, registered_codes,
)

# A hint and an image, 2 options, lecture and solution with newlines.
P1 = {
    "question": "Which property do these two objects have in common?",
    "choices": ["hard", "soft"], "answer": 1,
    "hint": "Select the better answer.", "image": "image.png",
    "lecture": "An object has different properties.\nA property can tell you how an object feels.",
    "solution": "Look at each object.\nA pillow is soft. A sweater is also soft.",
}
# No hint, no image, 5 options, empty lecture and solution.
P2 = {
    "question": "Which word does not rhyme?",
    "choices": ["cat", "hat", "bat", "dog", "mat"], "answer": 3,
    "hint": "", "image": None, "lecture": "", "solution": "",
}
# A hint, no image, 3 options, empty lecture.
P3 = {
    "question": "What is the capital of Utah?",
    "choices": ["Salt Lake City", "Provo", "Ogden"], "answer": 0,
    "hint": "Utah is a state in the western United States.", "image": None,
    "lecture": "", "solution": "Salt Lake City is the capital of Utah.",
}
# No hint, an image, 4 options, empty solution.
P4 = {
    "question": "Which animal's feet are also adapted for swimming?",
    "choices": ["duck", "eagle", "horse", "camel"], "answer": 0,
    "hint": "", "image": "image.png", "lecture": "Feet help animals move.", "solution": "",
}
PROBLEMS = {"P1": P1, "P2": P2, "P3": P3, "P4": P4}

INPUTS = {
    ("P1", "QCM"): "Which property do these two objects have in common?\nContext: Select the better answer.\n"
                   "Options: (A) hard (B) soft",
    ("P1", "CQM"): "Context: Select the better answer.\nQuestion: Which property do these two objects have in "
                   "common?\nOptions: (A) hard (B) soft",
    ("P2", "QCM"): "Which word does not rhyme?\nContext: N/A\nOptions: (A) cat (B) hat (C) bat (D) dog (E) mat",
    ("P2", "CQM"): "Context: N/A\nQuestion: Which word does not rhyme?\nOptions: (A) cat (B) hat (C) bat (D) dog "
                   "(E) mat",
    ("P3", "QCM"): "What is the capital of Utah?\nContext: Utah is a state in the western United States.\n"
                   "Options: (A) Salt Lake City (B) Provo (C) Ogden",
    ("P3", "CQM"): "Context: Utah is a state in the western United States.\nQuestion: What is the capital of Utah?\n"
                   "Options: (A) Salt Lake City (B) Provo (C) Ogden",
    ("P4", "QCM"): "Which animal's feet are also adapted for swimming?\nContext: N/A\n"
                   "Options: (A) duck (B) eagle (C) horse (D) camel",
    ("P4", "CQM"): "Context: N/A\nQuestion: Which animal's feet are also adapted for swimming?\n"
                   "Options: (A) duck (B) eagle (C) horse (D) camel",
}

OUTPUTS = {
    "P1": {
        "A": "The answer is B.",
        "LA": "An object has different properties.\nA property can tell you how an object feels. The answer is B.",
        "EA": "Look at each object.\nA pillow is soft. A sweater is also soft. The answer is B.",
        "LEA": "An object has different properties.\nA property can tell you how an object feels. "
               "Look at each object.\nA pillow is soft. A sweater is also soft. The answer is B.",
        "ELA": "Look at each object.\nA pillow is soft. A sweater is also soft. "
               "An object has different properties.\nA property can tell you how an object feels. The answer is B.",
        "AL": "The answer is B. BECAUSE: An object has different properties.\n"
              "A property can tell you how an object feels.",
        "AE": "The answer is B. BECAUSE: Look at each object.\nA pillow is soft. A sweater is also soft.",
        "ALE": "The answer is B. BECAUSE: An object has different properties.\nA property can tell you how an "
               "object feels. Look at each object.\nA pillow is soft. A sweater is also soft.",
        "AEL": "The answer is B. BECAUSE: Look at each object.\nA pillow is soft. A sweater is also soft. "
               "An object has different properties.\nA property can tell you how an object feels.",
        "LEPA": "LECTURE: An object has different properties.\nA property can tell you how an object feels.\n"
                "SOLUTION: Look at each object.\nA pillow is soft. A sweater is also soft.\n###\nANSWER: B.",
    },
    "P2": {  # nothing to explain: LLaVA leaves " The answer is D." with a leading space for LEA/ELA
        "A": "The answer is D.",
        "LA": "The answer is D.",
        "EA": "The answer is D.",
        "LEA": " The answer is D.",
        "ELA": " The answer is D.",
        "AL": "The answer is D.",
        "AE": "The answer is D.",
        "ALE": "The answer is D.",
        "AEL": "The answer is D.",
        "LEPA": "###\nANSWER: D.",
    },
    "P3": {
        "A": "The answer is A.",
        "LA": "The answer is A.",
        "EA": "Salt Lake City is the capital of Utah. The answer is A.",
        "LEA": "Salt Lake City is the capital of Utah. The answer is A.",
        "ELA": "Salt Lake City is the capital of Utah. The answer is A.",
        "AL": "The answer is A.",
        "AE": "The answer is A. BECAUSE: Salt Lake City is the capital of Utah.",
        "ALE": "The answer is A. BECAUSE: Salt Lake City is the capital of Utah.",
        "AEL": "The answer is A. BECAUSE: Salt Lake City is the capital of Utah.",
        "LEPA": "SOLUTION: Salt Lake City is the capital of Utah.\n###\nANSWER: A.",
    },
    "P4": {
        "A": "The answer is A.",
        "LA": "Feet help animals move. The answer is A.",
        "EA": "The answer is A.",
        "LEA": "Feet help animals move. The answer is A.",
        "ELA": "Feet help animals move. The answer is A.",
        "AL": "The answer is A. BECAUSE: Feet help animals move.",
        "AE": "The answer is A.",
        "ALE": "The answer is A. BECAUSE: Feet help animals move.",
        "AEL": "The answer is A. BECAUSE: Feet help animals move.",
        "LEPA": "LECTURE: Feet help animals move.\n###\nANSWER: A.",
    },
}


def test_the_tables_cover_every_output_code():
    assert all(set(table) == set(OUTPUT_CODES) for table in OUTPUTS.values())


@pytest.mark.parametrize("output_code", OUTPUT_CODES)
@pytest.mark.parametrize("input_code", ["QCM", "CQM"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_exact_input_and_output(name, input_code, output_code):
    fmt = get_format(f"{input_code}-{output_code}")
    assert fmt.render(PROBLEMS[name]) == (INPUTS[name, input_code], OUTPUTS[name][output_code])


@pytest.mark.parametrize("output_code", OUTPUT_CODES)
@pytest.mark.parametrize("input_code", ["QCM", "CQM"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_conversations_put_the_image_where_llava_does(name, input_code, output_code):
    problem, fmt = PROBLEMS[name], get_format(f"{input_code}-{output_code}")
    text, answer = INPUTS[name, input_code], OUTPUTS[name][output_code]
    image = problem["image"] is not None
    train = fmt.conversations(problem, "end")  # convert_sqa_to_llava.py
    assert train == [{"from": "human", "value": f"{text}\n<image>" if image else text},
                     {"from": "gpt", "value": answer}]
    evaluation = fmt.conversations(problem, "start")  # model_vqa_science.py
    assert evaluation[0]["value"] == (f"<image>\n{text}" if image else text)


def test_al_and_ae_mean_what_their_letters_say_unlike_llava():
    # LLaVA's script appends the solution for AL and the lecture for AE; ablate does the reverse.
    assert get_format("QCM-AL").render(P4)[1] == "The answer is A. BECAUSE: Feet help animals move."  # lecture
    assert get_format("QCM-AE").render(P3)[1] == "The answer is A. BECAUSE: Salt Lake City is the capital of Utah."


def test_base_prompt_keeps_the_labels_that_the_conversion_drops():
    assert ScienceQAPrompt("QCM", "A").base_prompt(P2) == (
        "Question: Which word does not rhyme?\nContext: N/A\nOptions: (A) cat (B) hat (C) bat (D) dog (E) mat",
        "Answer: The answer is D.",
    )
    assert ScienceQAPrompt("QCM", "LEA").base_prompt(P2)[1] == "Answer:  The answer is D."
    assert ScienceQAPrompt("QCM", "LEPA").base_prompt(P3)[1] == (
        "SOLUTION: Salt Lake City is the capital of Utah.\n###\nANSWER: A.")


def test_reasoning_inputs():
    options = "Options: (A) hard (B) soft"
    head = "Which property do these two objects have in common?\nContext: Select the better answer."
    lecture, solution = P1["lecture"], P1["solution"]
    assert get_format("QCML-A").render(P1)[0] == f"{head}\n{options}\nBECAUSE: {lecture}"
    assert get_format("QCME-A").render(P1)[0] == f"{head}\n{options}\nBECAUSE: {solution}"
    assert get_format("QCMLE-A").render(P1)[0] == f"{head}\n{options}\nBECAUSE: {lecture} {solution}"
    assert get_format("QCLM-A").render(P1)[0] == f"{head}\nBECAUSE: {lecture}\n{options}"
    assert get_format("QCEM-A").render(P1)[0] == f"{head}\nBECAUSE: {solution}\n{options}"
    assert get_format("QCLEM-A").render(P1)[0] == f"{head}\nBECAUSE: {lecture} {solution}\n{options}"
    # An empty trailing BECAUSE is dropped; an empty one in the middle stays, as in LLaVA.
    p2_head = "Which word does not rhyme?\nContext: N/A"
    p2_options = "Options: (A) cat (B) hat (C) bat (D) dog (E) mat"
    assert get_format("QCML-A").render(P2)[0] == f"{p2_head}\n{p2_options}"
    assert get_format("QCMLE-A").render(P2)[0] == f"{p2_head}\n{p2_options}"
    assert get_format("QCLM-A").render(P2)[0] == f"{p2_head}\nBECAUSE: \n{p2_options}"


def test_llava_text_quirks_are_reproduced():
    quirky = {
        "question": "Question: which  one?", "choices": ["x", "y"], "answer": 0,
        "hint": "  Answer: see  the   picture ", "image": None,
        "lecture": "one\\ntwo", "solution": "Answer: this",
    }
    text_in, text_out = get_format("QCM-LEA").render(quirky)
    # every "Question: " goes once the input starts with one; double spaces become single
    # (three become two); the hint is stripped; a literal backslash-n becomes a newline.
    assert text_in == "which one?\nContext: Answer: see the  picture\nOptions: (A) x (B) y"
    # every "Answer: " goes once the output starts with one
    assert text_out == "one\ntwo this The answer is A."
    assert get_format("CQM-LEA").render(quirky)[0] == (
        "Context: Answer: see the  picture\nQuestion: Question: which one?\nOptions: (A) x (B) y")


def test_llava15_mc_appends_the_instruction_and_answers_with_the_letter():
    fmt = get_format("llava15_mc")
    text = (f"{INPUTS['P1', 'CQM']}\nAnswer with the option's letter from the given choices directly.")
    assert fmt.render(P1) == (text, "B")
    # LLaVA-1.5 puts the image first whatever the data source asks for
    assert fmt.conversations(P1, "end") == [{"from": "human", "value": f"<image>\n{text}"},
                                            {"from": "gpt", "value": "B"}]
    assert fmt.answer(P1) == "B"


def test_llava15_short_answers_with_the_option_text():
    fmt = get_format("llava15_short")
    assert fmt.render(P3) == (
        f"{INPUTS['P3', 'CQM']}\nAnswer the question using a single word or phrase.", "Salt Lake City")
    assert fmt.answer(P3) == "Salt Lake City"


def test_llava15_short_applies_to_any_vqa_sample():
    sample = {
        "id": "q1", "image": "/x.png", "data_type": "vqa", "meta": {},
        "conversations": [
            {"from": "human", "value": "<image>\nWhat color is the shape?"}, {"from": "gpt", "value": "red"},
            {"from": "human", "value": "What shape is it?\n<image>"}, {"from": "gpt", "value": "circle"},
        ],
    }
    out = get_format("llava15_short").apply_to_sample(sample)
    instruction = "Answer the question using a single word or phrase."
    assert [t["value"] for t in out["conversations"]] == [
        f"<image>\nWhat color is the shape?\n{instruction}", "red",
        f"What shape is it?\n{instruction}\n<image>", "circle",
    ]
    assert sample["conversations"][0]["value"] == "<image>\nWhat color is the shape?"  # not modified
    assert get_format("llava15_short").apply_to_sample(out)["conversations"] == out["conversations"]


def test_prompt_codes_cannot_be_applied_to_other_samples():
    with pytest.raises(AblateError, match="llava15_short"):
        get_format("QCM-LEA").apply_to_sample({"conversations": []})


def test_every_code_and_llava15_format_is_registered():
    registry = registries().answer_format
    assert len(registered_codes()) == len(INPUT_CODES) * len(OUTPUT_CODES) == 80
    for key in [*registered_codes(), "llava15_mc", "llava15_short"]:
        assert key in registry
    fmt = registry.get("CQM-ALE").build()
    assert fmt.key == "CQM-ALE" and fmt.render(P4)[1] == "The answer is A. BECAUSE: Feet help animals move."


@pytest.mark.parametrize("code", ["QCM", "QQM-A", "QCX-A", "CM-A", "QCM-LX", "QCM-LLA", "QCM-", "QCM-ALA"])
def test_bad_codes_are_rejected(code):
    with pytest.raises(AblateError):
        get_format(code)


def test_unregistered_orders_still_render():
    assert get_format("MQ-A").render(P2) == (
        "Options: (A) cat (B) hat (C) bat (D) dog (E) mat\nQuestion: Which word does not rhyme?", "The answer is D.")


def test_resolve_answer_format_accepts_every_spelling():
    from ablate.scienceqa.formats import resolve_answer_format

    built = get_format("CQM-A")
    config = registries().answer_format.get("CQM-A").make_config()
    assert resolve_answer_format(None).key == "QCM-LEA"
    assert resolve_answer_format(built) is built
    assert {resolve_answer_format(v).key for v in ("CQM-A", {"type": "CQM-A"}, config)} == {"CQM-A"}
    with pytest.raises(AblateError, match="unknown answer_format 'QCM-LAE'"):
        resolve_answer_format("QCM-LAE")


# Option-text variants: LLaVA's outputs with the option's text where LLaVA writes its letter.
TEXT_OUTPUTS = {
    ("P1", "LEA"): "An object has different properties.\nA property can tell you how an object feels. "
                   "Look at each object.\nA pillow is soft. A sweater is also soft. The answer is soft.",
    ("P1", "ALE"): "The answer is soft. BECAUSE: An object has different properties.\nA property can tell you how "
                   "an object feels. Look at each object.\nA pillow is soft. A sweater is also soft.",
    ("P3", "LEA"): "Salt Lake City is the capital of Utah. The answer is Salt Lake City.",
    ("P3", "ALE"): "The answer is Salt Lake City. BECAUSE: Salt Lake City is the capital of Utah.",
    ("P3", "A"): "The answer is Salt Lake City.",
    ("P3", "LEPA"): "SOLUTION: Salt Lake City is the capital of Utah.\n###\nANSWER: Salt Lake City.",
    ("P2", "LEA"): " The answer is dog.",  # LLaVA's leading space when there is nothing to explain
}


@pytest.mark.parametrize("name, output_code", sorted(TEXT_OUTPUTS))
def test_text_variants_state_the_option_text_in_llavas_order(name, output_code):
    fmt = get_format(f"QCM-{output_code}-text")
    assert fmt.render(PROBLEMS[name]) == (INPUTS[name, "QCM"], TEXT_OUTPUTS[name, output_code])
    assert (fmt.key, fmt.target, fmt.bare_answer) == (f"QCM-{output_code}-text", "text", False)
    assert fmt.answer(PROBLEMS[name]) == PROBLEMS[name]["choices"][PROBLEMS[name]["answer"]]


def test_text_variants_differ_from_llava_only_in_the_answer():
    for code in OUTPUT_CODES:
        letter, text = get_format(f"QCM-{code}").render(P1), get_format(f"QCM-{code}-text").render(P1)
        assert text[0] == letter[0] and text[1] == letter[1].replace("is B.", "is soft.").replace("ANSWER: B.", "ANSWER: soft.")


def test_an_option_ending_in_a_full_stop_gets_no_second_one():
    problem = {**P4, "choices": ["The duck swims.", "The eagle flies."]}
    assert get_format("QCM-ALE-text").render(problem)[1] == "The answer is The duck swims. BECAUSE: Feet help animals move."


def test_text_variants_are_registered_for_the_qcm_input():
    from ablate.scienceqa.formats import registered_text_codes

    registry = registries().answer_format
    assert registered_text_codes() == [f"QCM-{o}-text" for o in OUTPUT_CODES]
    for key in registered_text_codes():
        assert key in registry and registry.get(key).build().key == key
    assert "CQM-LEA-text" not in registry
    assert "QCM-LEA with the option's text" in registry.get("QCM-LEA-text").description


@pytest.mark.parametrize("code", ["QCM-LEA-txt", "QCM-text", "QCM-LX-text", "QCM-LEA-text-text"])
def test_bad_text_codes_are_rejected(code):
    with pytest.raises(AblateError):
        get_format(code)
