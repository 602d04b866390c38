"""Jinja chat templates that render transformers chat messages as ablate's templates do.

Messages are `{"role": "system"|"user"|"assistant", "content": str | [{"type": "image"} |
{"type": "text", "text": str}, ...]}`; "<image>" inside a string counts as an image, as
lmms-eval's `llava_hf` model writes it, and a list's parts are joined by newlines in their order,
as ablate's lmms-eval model joins them. As in ablate (LLaVA's preprocess_multimodal), the image
moves to the front of its turn, followed by a newline.

`image_sep` is the text put right after each "<image>": ablate tokenizes the text after the
image on its own (LLaVA's tokenizer_image_token), while a processor tokenizes the whole text, so
some tokenizers need a space there to start that text with the same tokens (see
`ablate.run.hf_llava.processor.image_separator`). String literals are written with
json.dumps (ASCII escapes), which Jinja reads the same way.
"""

from __future__ import annotations

import json

from ablate.components.contracts import IMAGE_TOKEN
from ablate.run.hf_llava.support import UnsupportedExportError

# Sets `turn.text` (the turn's text) and adds the turn's images to `seen.images`. A list of parts
# is read as ablate's lmms-eval model reads one (ablate.run.lmms_prompts): the parts joined by
# newlines in their order, an image standing as "<image>".
_READ_TURN = """\
{%- set turn = namespace(text='', images=0, parts=[]) -%}
{%- if message['content'] is string -%}
  {%- set turn.text = message['content'] -%}
{%- else -%}
  {%- for item in message['content'] -%}
    {%- if item['type'] == 'image' -%}{%- set turn.parts = turn.parts + [IMAGE] -%}
    {%- elif item['type'] == 'text' -%}{%- set turn.parts = turn.parts + [item['text']] -%}{%- endif -%}
  {%- endfor -%}
  {%- set turn.text = turn.parts | join('\\n') -%}
{%- endif -%}
{%- set turn.images = turn.text.count(IMAGE) -%}
{%- set turn.text = turn.text.replace(IMAGE, '') -%}
{%- set seen.images = seen.images + turn.images -%}
{%- if seen.images > 1 -%}{{ raise_exception('ablate models take one image per conversation') }}{%- endif -%}
{%- if turn.images and message['role'] != 'user' -%}{{ raise_exception('images belong in user turns') }}{%- endif -%}
"""

_VICUNA = """\
{%- set seen = namespace(images=0, system=SYSTEM) -%}
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set seen.system = messages[0]['content'] if messages[0]['content'] is string
      else messages[0]['content'] | map(attribute='text') | join('') -%}
  {%- set messages = messages[1:] -%}
{%- endif -%}
{{- seen.system + SEP -}}
{%- for message in messages -%}
READ_TURN
  {%- if message['role'] != ['user', 'assistant'][loop.index0 % 2] -%}
    {{ raise_exception('roles must alternate user, assistant, user, ... after an optional system message') }}
  {%- endif -%}
  {%- if turn.images -%}
    {%- set value = IMAGE + IMAGE_SEP + ('\\n' + turn.text.strip() if turn.text.strip() else '') -%}
  {%- else -%}
    {%- set value = turn.text -%}
  {%- endif -%}
  {%- if message['role'] == 'user' -%}{{- USER + ': ' + value + SEP -}}
  {%- else -%}{{- ASSISTANT + ': ' + value + SEP2 -}}{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- ASSISTANT + ':' -}}{%- endif -%}
"""

_PLAIN = """\
{%- set seen = namespace(images=0) -%}
{%- for message in messages -%}
READ_TURN
  {%- if loop.first -%}
    {%- if message['role'] != 'user' or not turn.images -%}
      {{ raise_exception('the plain template starts with a user turn holding the image') }}
    {%- endif -%}
    {{- IMAGE -}}
  {%- elif loop.index0 == 1 and message['role'] == 'assistant' -%}
    {{- IMAGE_SEP + turn.text + SEP -}}
  {%- else -%}
    {{ raise_exception('the plain template takes one user turn (the image) and one assistant turn') }}
  {%- endif -%}
{%- endfor -%}
"""


def chat_template(template, image_sep: str) -> str:
    """The Jinja chat template for an ablate `vicuna_v1` or `plain` template object."""
    from ablate.templates import PlainTemplate, VicunaV1Template

    if type(template) is VicunaV1Template:
        body, names = _VICUNA, dict(SYSTEM=template.system, SEP=template.sep, SEP2=template.sep2,
                                    USER=template.roles["human"], ASSISTANT=template.roles["gpt"])
    elif type(template) is PlainTemplate:
        body, names = _PLAIN, dict(SEP=template.sep)
    else:  # a plugin may register its own template under a built-in name
        raise UnsupportedExportError(f"cannot export to hf-llava: template {template.name!r} is "
                                     f"{type(template).__name__}, which has no chat template here")
    constants = {"IMAGE": IMAGE_TOKEN, "IMAGE_SEP": image_sep, **names}
    header = "".join(f"{{%- set {name} = {json.dumps(value)} -%}}\n" for name, value in constants.items())
    return header + body.replace("READ_TURN\n", _READ_TURN)
