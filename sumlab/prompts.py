"""Named prompt templates. The default is the lab's; a user's own template must contain {dialogue}."""

from __future__ import annotations

from sumlab.config import PromptConfig
from sumlab.errors import SumlabError

TEMPLATES: dict[str, str] = {
    "lab": "Summarize the following conversation.\n\n{dialogue}\n\nSummary: ",
    "t5": "summarize: {dialogue}",
    "plain": "{dialogue}",
    "brief": "Briefly summarize this dialogue.\n\n{dialogue}\n\nSummary: ",
}


def resolve_template(config: PromptConfig | None = None) -> str:
    """The template text for ``config``: the user's own template, or the named one."""
    config = config or PromptConfig()
    if config.template is not None:
        return check_template(config.template)
    if config.name not in TEMPLATES:
        known = ", ".join(sorted(TEMPLATES))
        raise SumlabError(f"unknown prompt name {config.name!r}", f"use one of: {known}, or set prompt.template")
    return TEMPLATES[config.name]


def check_template(template: str) -> str:
    """Return ``template`` if it has a {dialogue} slot and no other slot; raise otherwise."""
    if "{dialogue}" not in template:
        raise SumlabError("the prompt template has no {dialogue} slot", "add {dialogue} where the dialogue goes")
    try:
        template.format(dialogue="")
    except (KeyError, IndexError, ValueError) as exc:
        raise SumlabError(
            f"the prompt template has a slot other than {{dialogue}}: {exc}",
            "write literal braces as {{ and }}",
        ) from None
    return template


def render_prompt(template: str, dialogue: str) -> str:
    """Fill ``template`` with ``dialogue``."""
    return template.format(dialogue=dialogue)
