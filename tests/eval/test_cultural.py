"""Cultural metrics on crafted cases: wrong culture, culture terms, language fidelity, variety markers."""

from __future__ import annotations

import pytest

from eval.config import EvalConfig
from eval.cultural import CultureLexicon, LanguageIdentifier, TermIndex, VarietyMarkers, term_id, term_scores
from eval.lexicon import main as lexicon_main


@pytest.fixture(scope="module")
def lexicon() -> CultureLexicon:
    return CultureLexicon.load(EvalConfig().cultural.lexicon, ("es", "pt", "ca"))


def test_a_peruvian_dish_called_mexican_is_flagged_and_a_correct_caption_is_not(lexicon):
    flagged, terms = lexicon.wrong_culture("Un plato de ceviche MEXICANO con limón.", "es-PE", "PE")
    assert flagged and terms == ["mexicano"]
    assert lexicon.wrong_culture("Ceviche peruano, como en Lima y el Cusco.", "es-PE", "PE") == (False, [])
    # inflected and accent-less mentions still count; Portuguese and Catalan names come from pycountry
    assert lexicon.wrong_culture("Tacos mexicanas de Mexico", "es-PE", "PE")[1] == ["mexicano", "mexico"]
    assert lexicon.wrong_culture("Um prato típico do Brasil", "pt-PT", "PT")[1] == ["brasil"]
    assert lexicon.wrong_culture("Un plat típic de Mèxic", "ca", "ES")[1] == ["mexic"]
    assert lexicon.wrong_culture("Un plato", "es", None) == (None, [])


def test_names_that_are_everyday_words_count_only_when_capitalised_mid_sentence(lexicon):
    assert lexicon.wrong_culture("Chiles en nogada con chile poblano y lima.", "es-MX", "MX") == (False, [])
    assert lexicon.wrong_culture("Un ceviche como los de Lima.", "es-MX", "MX") == (True, ["lima"])


def test_the_committed_lexicon_is_what_pycountry_and_the_curated_file_build():
    assert lexicon_main(["--check"]) == 0


def test_culture_terms_match_across_accents_plurals_and_case():
    index = TermIndex(["mole poblano", "tortilla", "Día de Muertos", "ají limo"], ["es-MX"])
    found = index.find("Las TORTILLAS y el mole poblano del DIA DE MUERTOS", "es-MX")
    assert found == {"mole poblano", "tortilla", "dia de muertos"}
    expected = {term_id("tortilla"), term_id("ají limo")}
    recall, precision = term_scores(
        found, expected, {term_id(t) for t in ["mole poblano", "tortilla", "Día de Muertos", "ají limo"]}
    )
    assert recall == pytest.approx(0.5) and precision == pytest.approx(1 / 3)
    assert term_scores(set(), set(), set()) == (None, None)


def test_a_portuguese_caption_for_an_es_mx_image_fails_language_fidelity():
    lid = LanguageIdentifier()
    assert lid.fidelity("Um prato de tacos com cebola roxa e coentro numa feira.", "es-MX") == (False, "pt")
    assert lid.fidelity("Un plato de tacos con cebolla morada y cilantro en un mercado.", "es-MX") == (
        True,
        "es",
    )
    assert lid.fidelity("Tacos", "qu") == (None, lid.identify("Tacos")[0])  # Quechua: not judged


def test_variety_markers_are_a_signal_with_undetermined_captions():
    markers = VarietyMarkers.load(EvalConfig().cultural.variety_markers)
    assert markers.adherence("Vos tenés que probar estas papas.", "es-AR") == (
        True,
        {"american": 1, "voseo": 2},
    )
    assert markers.adherence("Vosotros tenéis patatas.", "es-MX")[0] is False
    assert markers.adherence("O autocarro passa pela casa de banho.", "pt-BR")[0] is False
    assert markers.adherence("Você pega o ônibus.", "pt-BR")[0] is True
    assert markers.adherence("Un plato rico.", "es-ES") == (None, {})
    assert markers.adherence("Vosotros", "es") == (None, {})  # no variety requested
