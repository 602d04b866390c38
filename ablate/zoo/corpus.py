"""The text the zoo tokenizer is trained on, generated offline and in a fixed order.

It covers what ablate's recipes feed a tiny LLM: easy-VQA questions and answers, the
vicuna_v1 conversation frame LLaVA uses, ScienceQA prompt words, and everyday English about
shapes, colours and school science. Anything outside it still round-trips through byte fallback.
The "easyvqa+scienceqa" vocabulary adds the embedded ScienceQA's problems (`scienceqa_corpus`).
"""

from __future__ import annotations

VICUNA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)

# Fixed prompt fragments; repeated in the corpus so they become few tokens each.
PROMPT_PHRASES = (
    VICUNA_SYSTEM,
    "USER:",
    "ASSISTANT:",
    "USER: <image>",
    "<image>",
    "<image>\n",
    "Question:",
    "Context:",
    "Options:",
    "Answer:",
    "The answer is",
    "BECAUSE:",
    "Answer with the option's letter from the given choices directly.",
    "Answer the question using a single word or phrase.",
    "Lecture:",
    "Solution:",
    "N/A",
    "(A)",
    "(B)",
    "(C)",
    "(D)",
    "(E)",
    "A.",
    "B.",
    "C.",
    "D.",
    "E.",
    "Human:",
    "Assistant:",
    "###",
)

COMMON_WORDS = """
the a an of to and or in on at by for with from as is are was were be been being it its this
that these those there here what which who whom whose when where why how not no yes do does did
has have had can could will would should may might must shall if then than so because but also
only very more most less least many much some any all each every both either neither other
another same different new old first last next one two three four five six seven eight nine ten
zero hundred thousand number numbers count many few
shape shapes circle circles square squares rectangle rectangles triangle triangles oval star
line lines point points side sides corner corners round flat curved straight edge edges angle
color colors colour red green blue yellow black white gray grey brown teal orange purple pink
dark light bright pale small large big tiny huge long short tall wide narrow thin thick high low
left right top bottom middle center centre above below under over behind inside outside near far
image images picture pictures photo photos see look show shows shown contain contains present
object objects thing things part parts whole half
question questions answer answers option options choice choices letter letters word words phrase
correct wrong true false best describe describes description explain explains example examples
choose select given following
science scientist scientists biology chemistry physics earth space weather climate energy force
forces motion speed mass weight volume temperature heat cold hot warm cool water air soil rock
rocks mineral minerals plant plants animal animals cell cells organism organisms food chain web
sun moon planet planets star stars light sound magnet magnets magnetic electric electricity
matter solid liquid gas gases mixture solution solutions acid base salt sugar metal wood glass
plastic paper rubber material materials property properties change changes physical chemical
experiment experiments test tests measure measured measurement data result results observe
observed hypothesis variable variables trait traits inherited learned gene genes offspring parent
parents fossil fossils habitat ecosystem ecosystems adaptation adaptations predator prey
population community map maps state states capital city country continent ocean oceans river
north south east west kilogram kilograms gram grams meter meters centimeter centimeters liter
liters mile miles second seconds minute minutes hour hours day days year years
lecture solution context because therefore however which closest most likely less likely
compare compared increase increases decrease decreases greater smaller larger higher lower
human assistant chat user curious artificial intelligence helpful detailed polite gives
"""

SCIENCE_SENTENCES = (
    "Which of these states is farthest north?",
    "Which word would you find on a dictionary page?",
    "Identify the question that can be answered by the experiment.",
    "Which property do these three objects have in common?",
    "Select the solid.",
    "Select the liquid.",
    "Select the gas.",
    "Which animal's body is better adapted for swimming?",
    "Which tense does the sentence use?",
    "Think about the magnetic force between the magnets in each pair.",
    "The magnitude of the magnetic force is greater in Pair 1.",
    "A solid has a size and shape of its own.",
    "A liquid takes the shape of any container it is in.",
    "Every substance around you is made of matter.",
    "Offspring inherit traits from their parents.",
    "Look at the picture and answer the question.",
    "There is a red circle in the image.",
    "The image shows a blue triangle on a white background.",
    "What color is the shape in the image?",
    "What shape is in the image?",
)


def tokenizer_corpus(vocabulary: str = "easyvqa") -> list[str]:
    """Training text for the zoo tokenizer. Same list, same order, on every call.

    `vocabulary` "easyvqa+scienceqa" adds `scienceqa_corpus()`."""
    import easy_vqa  # light: pure Python, data shipped with the package

    questions = sorted(set(easy_vqa.get_train_questions()[0]) | set(easy_vqa.get_test_questions()[0]))
    answers = sorted(easy_vqa.get_answers())
    words = COMMON_WORDS.split()

    lines: list[str] = []
    lines += questions
    lines += [q[0].upper() + q[1:] for q in questions]
    lines += answers + [a.capitalize() for a in answers]
    lines += [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    lines += [w.capitalize() for w in words]
    lines += list(SCIENCE_SENTENCES)
    # Weight the conversation frame so its pieces merge early.
    lines += list(PROMPT_PHRASES) * 20
    lines += [f"{VICUNA_SYSTEM} USER: <image>\n{q} ASSISTANT: {a}</s>" for q, a in zip(questions, answers * 9)]
    if vocabulary == "easyvqa+scienceqa":
        lines += scienceqa_corpus()
    return lines


SCIENCEQA_PROBLEMS_PER_FAMILY = 50
SCIENCEQA_CORPUS_SEED = 7  # not the dataset's (0): the tokenizer reads the families' words, not its problems


def scienceqa_corpus() -> list[str]:
    """The words of the embedded ScienceQA's question families: question, options, context,
    lecture and solution of 50 problems per family (its own seed, easy-VQA train pictures),
    deduplicated and sorted.

    Why: a real LLM's tokenizer was trained on English and spells "rabbit" or "jacket" in one or
    two pieces; trained on easy-VQA text alone, the zoo tokenizer spells them in four or five,
    so a lecture is 89 tokens on average instead of 57, and a tiny LLM has to copy an option
    piece by piece (README, "scienceqa_format at tiny scale")."""
    import random

    from ablate.scienceqa.families import FAMILIES
    from ablate.scienceqa.generator import easy_vqa_pictures

    rng = random.Random(SCIENCEQA_CORPUS_SEED)
    pictures = easy_vqa_pictures("train")
    lines: set[str] = set()
    for family in FAMILIES:
        for _ in range(SCIENCEQA_PROBLEMS_PER_FAMILY):
            problem = family.make(rng, rng.choice(pictures) if family.needs_picture else None)
            lines.update([problem["question"], " ".join(problem["choices"]), problem["hint"], problem["lecture"],
                          problem["solution"]])
    return sorted(line for line in lines if line)
