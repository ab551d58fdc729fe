"""Named prompt templates. The default is the lab's; a user's own template must contain {dialogue}."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from sumlab.errors import SumlabError

if TYPE_CHECKING:  # sumlab.config checks templates with check_template, so this module must not import it at load
    from sumlab.config import PromptConfig

TEMPLATES: dict[str, str] = {
    "lab": "Summarize the following conversation.\n\n{dialogue}\n\nSummary: ",
    "t5": "summarize: {dialogue}",
    "plain": "{dialogue}",
    "brief": "Briefly summarize this dialogue.\n\n{dialogue}\n\nSummary: ",
}


def resolve_template(config: PromptConfig | None = None) -> str:
    """The template text for ``config``: the user's own template, or the named one."""
    if config is None:
        from sumlab.config import PromptConfig

        config = PromptConfig()
    if config.template is not None:
        return check_template(config.template)
    return named_template(config.name)


def named_template(name: str) -> str:
    """The template called ``name``; raise a SumlabError listing the known names for any other."""
    if name not in TEMPLATES:
        known = ", ".join(sorted(TEMPLATES))
        raise SumlabError(f"unknown prompt name {name!r}", f"use one of: {known}, or set prompt.template")
    return TEMPLATES[name]


def check_template(template: str) -> str:
    """Return ``template`` if it has a {dialogue} slot and no other slot; raise otherwise.

    The slots are parsed as ``str.format`` sees them, so ``{{dialogue}}`` (literal braces, no slot)
    and ``{dialogue.x}`` or ``{dialogue[0]}`` (an attribute or item of the dialogue) are refused.
    """
    try:
        slots = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise SumlabError(f"the prompt template is malformed: {exc}", "write literal braces as {{ and }}") from None
    if "dialogue" not in slots:
        raise SumlabError("the prompt template has no {dialogue} slot", "add {dialogue} where the dialogue goes")
    others = sorted({"{" + name + "}" for name in slots if name != "dialogue"})
    if others:
        raise SumlabError(
            f"the prompt template has a slot other than {{dialogue}}: {', '.join(others)}",
            "write literal braces as {{ and }}",
        )
    try:
        template.format(dialogue="")  # a bad conversion or format spec, e.g. {dialogue!x} or {dialogue:{width}}
    except (KeyError, IndexError, ValueError) as exc:
        raise SumlabError(
            f"the prompt template's {{dialogue}} slot is malformed: {exc}", "write it as {dialogue}"
        ) from None
    return template


def render_prompt(template: str, dialogue: str) -> str:
    """Fill ``template`` with ``dialogue``."""
    return template.format(dialogue=dialogue)
