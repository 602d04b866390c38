"""The `ablate` model's registration with lmms-eval (entry point group `lmms_eval.models`).

lmms-eval imports this module whenever it builds its model registry, so it only declares where
the classes live; `ablate.run.lmms_chat` (torch, the model code) loads when the model is used:

    lmms-eval --model ablate --model_args pretrained=RUN_DIR --tasks gqa
"""

from lmms_eval.models.registry_v2 import ModelManifest

MANIFEST = ModelManifest(
    model_id="ablate",
    chat_class_path="ablate.run.lmms_chat.AblateChat",
    simple_class_path="ablate.run.lmms_chat.AblateSimple",  # lmms-eval's --force_simple
)
