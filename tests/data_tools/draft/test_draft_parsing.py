from __future__ import annotations

import pytest

from data_tools.draft.parsing import InvalidOutput, parse_caption


def test_plain_json():
    out = parse_caption(
        '{"caption": "Tacos al pastor.", "cultural_terms": ["taco"], "language": "es-MX", "confidence": 0.9}'
    )
    assert (out.caption, out.cultural_terms, out.language, out.confidence) == (
        "Tacos al pastor.",
        ["taco"],
        "es-MX",
        0.9,
    )


def test_fenced_and_surrounded_by_prose():
    text = (
        'Claro, aquí está:\n```json\n{"caption": "Un mate {con} yerba", "confidence": "85%"}\n```\n¡Saludos!'
    )
    out = parse_caption(text)
    assert out.caption == "Un mate {con} yerba" and out.confidence == pytest.approx(0.85)


def test_terms_as_comma_string_and_confidence_as_percent_number():
    out = parse_caption(
        'x {"caption": "Feijoada completa", "cultural_terms": "feijoada, farofa", "confidence": 90}'
    )
    assert out.cultural_terms == ["feijoada", "farofa"] and out.confidence == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("Una foto bonita sin JSON", "no JSON object"),
        ('{"caption": "abc", "confidence": 0.5', "no JSON object"),
        ('{"caption": ""}', "caption"),
        ('{"text": "wrong key"}', "caption"),
        ('{"caption": "ok caption", "confidence": 7000}', "confidence"),
        ("[1, 2]", "no JSON object"),
    ],
)
def test_invalid_answers_are_refused_with_reason(text, reason):
    with pytest.raises(InvalidOutput, match=reason):
        parse_caption(text)


def test_text_mode_takes_the_answer_as_caption():
    assert parse_caption('  "Un hórreo galego."  ', output="text").caption == "Un hórreo galego."
    with pytest.raises(InvalidOutput):
        parse_caption("  ", output="text")
