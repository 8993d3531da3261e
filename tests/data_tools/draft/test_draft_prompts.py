from __future__ import annotations

from pathlib import Path

import pytest

from data_tools.draft.config import DraftConfig
from data_tools.draft.prompts import PERTURBATIONS, PromptError, PromptLibrary, country_name

REQUIRED = ("es-ES", "es-MX", "es-AR", "es-CO", "es-PE", "pt-BR", "pt-PT", "ca", "gl", "eu")
CONTEXT = dict(
    country="PE", country_name="Perú", region="Cusco", category="comida", cultural_context="Cuy al horno.",
    language="es-PE", language_name="x", wrong_country_name="Bolivia", wrong_language="es-ES",
    wrong_language_name="español de España",
)  # fmt: skip


@pytest.fixture(scope="module")
def library() -> PromptLibrary:
    return PromptLibrary(DraftConfig().prompts_dir, "v1")


def test_every_required_variety_has_a_native_template(library):
    assert set(REQUIRED) <= set(library.templates)
    # written natively, not one text copied: the cultural prompts all differ
    texts = {library.templates[tag].render("cultural", CONTEXT) for tag in REQUIRED}
    assert len(texts) == len(REQUIRED)
    assert "Escribí" in library.templates["es-AR"].render("cultural", CONTEXT)  # rioplatense voseo


@pytest.mark.parametrize("tag", REQUIRED)
def test_all_strategies_render_and_use_metadata(library, tag):
    template = library.templates[tag]
    cultural = template.render("cultural", CONTEXT)
    assert "Cusco" in cultural and "Cuy al horno." in cultural
    generic = template.render("generic", CONTEXT)
    assert "Cusco" not in generic and "Cuy" not in generic  # generic gets no cultural context
    for perturbation in PERTURBATIONS:
        assert template.render("perturbed", CONTEXT, perturbation=perturbation)
    assert "Bolivia" in template.render("perturbed", CONTEXT, perturbation="wrong_country")
    assert '"caption"' in template.output_json and "{{ language }}" in template.output_json


@pytest.mark.parametrize("tag", REQUIRED)
def test_absent_metadata_leaves_no_trace(library, tag):
    sparse = {**CONTEXT, "region": None, "cultural_context": None}
    text = library.templates[tag].render("cultural", sparse)
    assert "None" not in text and "Cusco" not in text and "\n\n" not in text


def test_fallback_to_bare_language_and_clear_error(library):
    assert library.for_language("es-PA").language == "es"
    assert library.for_language("pt-AO").language == "pt"
    assert library.for_language("es-MX").language == "es-MX"
    with pytest.raises(PromptError, match=r"no prompt template for language 'ay'.*available"):
        library.for_language("ay")


def test_missing_version_and_malformed_template(tmp_path):
    with pytest.raises(PromptError, match="no prompt version 'v9'"):
        PromptLibrary(DraftConfig().prompts_dir, "v9")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "es.yaml").write_text("language: es\nlanguage_name: x\n")
    with pytest.raises(PromptError, match="missing keys"):
        PromptLibrary(tmp_path, "v1")


def test_country_names_are_localised():
    assert country_name("MX", "ca") == "Mèxic"
    assert country_name("ES", "pt") == "Espanha"
    assert country_name("ES", "eu") == "Espainia"
    assert country_name(None, "es") is None


def test_templates_are_hashed(library):
    assert all(len(t.sha256) == 64 for t in library.templates.values())
    assert Path(library.templates["ca"].path).name == "ca.yaml"
