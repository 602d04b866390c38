"""The assembled vision-language model: encoder -> connector -> LLM.

Heavy imports (torch, transformers, peft) live in the submodules; import them directly:
`from ablate.model.vlm import VisionLanguageModel`, `from ablate.model.build import build_vlm`,
`from ablate.model.trainable import apply_trainable, merge_lora`.
"""
