from __future__ import annotations

import pytest

from data_tools.records import (
    MetadataError,
    normalize_country,
    normalize_language,
    normalize_license,
    validate_metadata,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MX", "MX"),
        ("mx", "MX"),
        (" pe ", "PE"),
        ("ESP", "ES"),
        ("bra", "BR"),
        ("Mexico", "MX"),
        ("Portugal", "PT"),
    ],
)
def test_country_normalised_to_alpha2(value, expected):
    assert normalize_country(value) == expected


@pytest.mark.parametrize("value", ["XX", "Narnia", "12", "ZZZ"])
def test_invalid_country_names_field_and_value(value):
    with pytest.raises(MetadataError) as info:
        normalize_country(value)
    assert info.value.field == "country"
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("es-MX", "es-MX"), ("es_mx", "es-MX"), ("PT-br", "pt-BR"), ("ca", "ca"), ("eu", "eu"), ("gl", "gl"),
     ("qu", "qu"), ("gn", "gn"), ("es-419", "es-419")],
)  # fmt: skip
def test_language_tags_validated_and_canonicalised(value, expected):
    assert normalize_language(value) == expected


@pytest.mark.parametrize("value", ["spanish!", "es-", "e", "12-34"])
def test_invalid_language_rejected(value):
    with pytest.raises(MetadataError, match="BCP 47"):
        normalize_language(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("CC-BY-4.0", "CC-BY-4.0"), ("cc-by-sa-4.0", "CC-BY-SA-4.0"), ("CC BY 4.0", "CC-BY-4.0"), ("cc0", "CC0-1.0"),
     ("mit", "MIT"), ("Apache-2.0 OR MIT", "Apache-2.0 OR MIT"), ("all rights reserved by me", None)],
)  # fmt: skip
def test_license_spdx_normalisation(value, expected):
    assert normalize_license(value) == expected


def test_record_without_license_is_collected_but_unpublishable():
    meta = validate_metadata({"language": "es-PE"})
    assert meta.publishable is False
    assert "no_license" in meta.flags
    unknown = validate_metadata({"language": "es-PE", "license": "ask my uncle"})
    assert unknown.publishable is False and "unknown_license" in unknown.flags
    good = validate_metadata({"language": "es-PE", "license": "cc-by-4.0"})
    assert good.publishable is True and good.license == "CC-BY-4.0"


def test_required_fields_and_vocabulary():
    with pytest.raises(MetadataError, match=r"'country'.*required"):
        validate_metadata({"language": "es"}, required=("country",))
    with pytest.raises(MetadataError, match="vocabulary"):
        validate_metadata({"category": "Spaceship"}, categories=("food",), strict_categories=True)
    assert (
        validate_metadata({"category": "Food"}, categories=("food",), strict_categories=True).category
        == "food"
    )


def test_huge_values_rejected_with_length():
    with pytest.raises(MetadataError, match="5000 characters"):
        validate_metadata({"cultural_context": "x" * 5000}, max_context_chars=4000)
    with pytest.raises(MetadataError, match="'author'"):
        validate_metadata({"author": "y" * 600}, max_field_chars=500)


def test_reference_captions_accept_list_json_or_text():
    assert validate_metadata({"reference_captions": '["a", "b"]'}).reference_captions == ["a", "b"]
    assert validate_metadata({"reference_captions": "una sola"}).reference_captions == ["una sola"]
    assert validate_metadata({"reference_captions": ["x", ""]}).reference_captions == ["x"]
    with pytest.raises(MetadataError, match="reference_captions"):
        validate_metadata({"reference_captions": {"a": 1}})


def test_non_text_value_rejected():
    with pytest.raises(MetadataError, match="expected text"):
        validate_metadata({"region": {"nested": True}})
