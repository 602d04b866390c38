"""Does a zoo Llama read? Its yes/no skill on easy-VQA *test* images written as text.

The language-pretrained zoo Llama (`tiny-llama-easyvqa`, ablate.zoo.text_pretrain) stands in for
Vicuna: it should answer "is there a circle?" from a one-line description of the image, the
format it was pretrained on, before any image is involved. easy-VQA's yes/no questions name
something absent 82% of the time, so a model that ignores the description and always answers
"absent" scores 0.82: this probe splits accuracy by (named thing present?, negated question?,
shape or colour), which tells the skill from that prior.

    python benchmarks/zoo_lm_probe.py                      # the zoo's tiny-llama-easyvqa (built if missing)
    python benchmarks/zoo_lm_probe.py --checkpoint DIR     # any causal LM folder with a tokenizer
    python benchmarks/zoo_lm_probe.py --images 200
    python benchmarks/zoo_lm_probe.py --zoo tiny-llama-easyvqa-recall --lecture

`--lecture` puts a ScienceQA lecture (one of the embedded set's 14, 54 to 130 tokens, text
neither zoo Llama was pretrained on) between the description and the question: can the model
still read the description from that far back, as a solution written after its lecture must?

Prints one line per case, then `prior <float>` (always "absent") and `accuracy <float>`.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

import torch


def lectures() -> list[str]:
    """The embedded ScienceQA set's lectures, one per skill, sorted."""
    from ablate.scienceqa.generator import ensure_scienceqa
    from ablate.scienceqa.problems import load_problems

    return sorted({p["lecture"] for p in load_problems(ensure_scienceqa()).values() if p["lecture"]})


def probe_prompts(images: int, seed: int = 0, lecture: bool = False) -> list[tuple[str, str, tuple[str, str, str]]]:
    """(prompt, answer, case) for the yes/no questions of the first `images` test images; with
    `lecture`, a seeded ScienceQA lecture between each description and its question."""
    from ablate.data.sources.easyvqa_facts import COLORS, is_negated, names_present
    from ablate.data.sources.easyvqa_text import article
    from ablate.zoo.text_pretrain import DESCRIPTIONS, image_facts

    rng = random.Random(seed)
    passages, pick = (lectures() if lecture else []), random.Random(seed + 1)  # own stream: same descriptions
    prompts = []
    for shape, color, qas in image_facts("test")[:images]:
        a = article(color)
        description = rng.choice(DESCRIPTIONS).format(A=a.capitalize(), a=a, color=color, shape=shape)
        for question, answer in qas:
            if answer not in ("yes", "no"):
                continue
            case = ("present" if names_present(question, answer) else "absent",
                    "negated" if is_negated(question) else "plain",
                    "colour" if any(c in question for c in COLORS) else "shape")
            between = f"\n{pick.choice(passages)}" if passages else ""
            prompts.append((f"{description}{between}\nQ: {question}\nA:", answer, case))
    return prompts


def answers(model, tokenizer, prompts: list[str], batch_size: int = 64) -> list[str]:
    """Greedy first word after each prompt."""
    tokenizer.padding_side = "left"
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True)
        with torch.no_grad():
            generated = model.generate(**batch, max_new_tokens=2, do_sample=False)
        texts = tokenizer.batch_decode(generated[:, batch.input_ids.shape[1]:], skip_special_tokens=True)
        out += [(text.split() or [""])[0] for text in texts]
    return out


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a causal LM folder (default: the zoo entry --zoo)")
    parser.add_argument("--zoo", default="tiny-llama-easyvqa", help="zoo entry probed (built if missing)")
    parser.add_argument("--lecture", action="store_true", help="a ScienceQA lecture between description and question")
    parser.add_argument("--images", type=int, default=400, help="test images whose yes/no questions are asked")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    path = args.checkpoint
    if path is None:
        from ablate.zoo import build

        path = str(build(args.zoo))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    prompts = probe_prompts(args.images, lecture=args.lecture)
    said = answers(model, tokenizer, [p for p, _, _ in prompts])
    total, right = Counter(), Counter()
    for (_, answer, case), reply in zip(prompts, said):
        total[case] += 1
        right[case] += reply == answer
    between = ", a lecture between description and question" if args.lecture else ""
    print(f"{path}: {len(prompts)} yes/no questions about {args.images} test images, as text{between}")
    for case in sorted(total):
        print(f"  {' / '.join(case):28} {total[case]:5d}  accuracy {right[case] / total[case]:.3f}")
    absent = sum(n for case, n in total.items() if case[0] == "absent")
    print(f"prior {absent / len(prompts):.3f}")
    print(f"accuracy {sum(right.values()) / len(prompts):.3f}")


if __name__ == "__main__":
    main()
