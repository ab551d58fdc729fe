"""Tests for sumlab.text.prompts: the lab's template, named templates, and checks on a user's own template."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sumlab.config import PromptConfig
from sumlab.errors import SumlabError
from sumlab.text.prompts import (
    TEMPLATES,
    check_template,
    render_prompt,
    resolve_template,
)

LAB_TEMPLATE = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "


def test_default_template_is_the_labs_exactly():
    assert resolve_template() == LAB_TEMPLATE
    assert resolve_template(PromptConfig()) == LAB_TEMPLATE
    assert TEMPLATES["lab"] == LAB_TEMPLATE


def test_render_fills_the_dialogue_once_and_keeps_its_braces_literal():
    dialogue = "#Person1#: is {this} a slot?\n#Person2#: no."
    prompt = render_prompt(LAB_TEMPLATE, dialogue)
    assert prompt == f"Summarize the following conversation.\n\n{dialogue}\n\nSummary: "
    assert prompt.count(dialogue) == 1


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_named_template_resolves_and_passes_its_own_check(name):
    template = resolve_template(PromptConfig(name=name))
    assert template == TEMPLATES[name]
    assert check_template(template) == template
    assert "DIALOGUE-TEXT" in render_prompt(template, "DIALOGUE-TEXT")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(SumlabError) as info:
        resolve_template(PromptConfig(name="nope"))
    message = str(info.value)
    assert "'nope'" in message
    for name in TEMPLATES:
        assert name in message


def test_own_template_wins_over_the_name():
    own = "Dialogue: {dialogue}\nTL;DR:"
    assert resolve_template(PromptConfig(name="t5", template=own)) == own


@pytest.mark.parametrize(
    "template",
    [
        "Summarize this conversation.",  # no slot at all
        "Summarize: {text}",  # a different slot only
        "Summarize: {{dialogue}}",  # literal braces: the dialogue would never be inserted
        "Summarize: {dialogue[0]}",  # an item of the dialogue, not the dialogue
    ],
)
def test_template_without_a_dialogue_slot_is_refused(template):
    with pytest.raises(SumlabError, match=r"no \{dialogue\} slot"):
        check_template(template)


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("{dialogue} about {topic}", "{topic}"),
        ("{dialogue} {0}", "{0}"),
        ("{dialogue} {}", "{}"),
        ("{dialogue} {dialogue.upper}", "{dialogue.upper}"),  # used to escape as an AttributeError
    ],
)
def test_template_with_another_slot_is_refused_and_the_slot_named(template, named):
    with pytest.raises(SumlabError, match="slot other than") as info:
        check_template(template)
    assert named in str(info.value)


@pytest.mark.parametrize("template", ["{dialogue} {", "{dialogue} }", "{dialogue!x}", "{dialogue:d}", "{dialogue:{w}}"])
def test_malformed_template_is_a_sumlab_error(template):
    with pytest.raises(SumlabError, match="malformed"):
        check_template(template)


def test_literal_braces_around_the_slot_are_fine():
    template = check_template("JSON {{ {dialogue} }}")
    assert render_prompt(template, "x") == "JSON { x }"


def test_prompt_config_validates_its_template():
    with pytest.raises(ValidationError, match=r"\{dialogue\}"):
        PromptConfig(template="Summarize this.")
    config = PromptConfig(template="A: {dialogue}")
    assert config.template == "A: {dialogue}"
    with pytest.raises(ValidationError):  # assignment is validated too
        config.template = "no slot"


@pytest.mark.parametrize("template", ["{dialogue} and {topic}", "{dialogue} {0}", "{dialogue!x}", "{dialogue"])
def test_prompt_config_refuses_what_check_template_refuses_with_its_message(template):
    """One check: the config refuses at load exactly what the prompt would be refused for when used."""
    with pytest.raises(SumlabError) as used:
        check_template(template)
    with pytest.raises(ValidationError) as loaded:
        PromptConfig(template=template)
    assert used.value.message in str(loaded.value)


def test_prompt_config_refuses_a_template_whose_only_dialogue_is_literal():
    with pytest.raises(ValidationError):
        PromptConfig(template="Summarize: {{dialogue}}")
