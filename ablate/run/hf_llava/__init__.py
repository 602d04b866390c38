"""`ablate export --format hf-llava`: a finished run as a transformers Llava checkpoint.

The folder holds what `LlavaForConditionalGeneration.from_pretrained` and
`AutoProcessor.from_pretrained` read with their defaults: config.json, safetensors weights
(LoRA was merged when each stage was stored), generation_config.json, and a LlavaProcessor
(image processor, tokenizer with an "<image>" token, chat template). Only models Llava
reproduces exactly are exported (`support`); the processor's tokens are checked against
ablate's before the folder is handed over (`export.check_tokens`).
"""

from ablate.run.hf_llava.export import export_llava, export_run

__all__ = ["export_llava", "export_run"]
