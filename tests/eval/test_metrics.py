"""Reference metrics equal the peers on the same input: sacrebleu, pycocoevalcap's CIDEr, rouge-score."""

from __future__ import annotations

import random

import evaluate
import pytest
import sacrebleu

from eval.metrics import metric_path
from eval.metrics.core import bleu_stats, chrf_stats, cider_d_scores, reference_metrics, rouge_l_scores
from eval.text import tokenize, tokenized

WORDS = [
    "el",
    "la",
    "de",
    "un",
    "una",
    "taco",
    "tortilla",
    "méxico",
    "perú",
    "ceviche",
    "con",
    "sin",
    "plato",
    "rojo",
    "verde",
    "mercado",
    "fiesta",
    "pão",
    "queijo",
]


def corpus(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    sentence = lambda: " ".join(rng.choices(WORDS, k=rng.randint(2, 14))).capitalize() + "."  # noqa: E731
    return [sentence() for _ in range(n)], [[sentence() for _ in range(rng.randint(1, 3))] for _ in range(n)]


def streams(refs: list[list[str]]) -> list[list[str | None]]:
    return [[r[i] if i < len(r) else None for r in refs] for i in range(max(map(len, refs)))]


def test_bleu_and_chrf_equal_sacrebleu_corpus_scores_with_a_variable_number_of_references():
    hyps, refs = corpus(120, 0)
    assert bleu_stats(hyps, refs).corpus() == pytest.approx(
        sacrebleu.corpus_bleu(hyps, streams(refs)).score, abs=1e-9
    )
    expected_chrf = sacrebleu.corpus_chrf(hyps, streams(refs), word_order=2).score
    assert chrf_stats(hyps, refs).corpus() == pytest.approx(expected_chrf, abs=1e-9)
    # a subset (a country) re-sums its own rows: equal to sacrebleu run on that subset alone
    mask = [i % 3 == 0 for i in range(len(hyps))]
    sub_h = [h for h, m in zip(hyps, mask, strict=True) if m]
    sub_r = [r for r, m in zip(refs, mask, strict=True) if m]
    import numpy as np

    assert bleu_stats(hyps, refs).corpus(np.array(mask)) == pytest.approx(
        sacrebleu.corpus_bleu(sub_h, streams(sub_r)).score, abs=1e-9
    )


def test_cider_d_equals_pycocoevalcap_on_the_same_tokens():
    from pycocoevalcap.cider.cider import Cider

    hyps, refs = corpus(150, 1)
    hyps[3] = "una palabra nueva que ninguna referencia tiene"  # n-grams with document frequency 0
    tok_h = [tokenized(h) for h in hyps]
    tok_r = [[tokenized(r) for r in rs] for rs in refs]
    mean, theirs = Cider().compute_score(
        {i: tok_r[i] for i in range(len(hyps))}, {i: [tok_h[i]] for i in range(len(hyps))}
    )
    ours = cider_d_scores(tok_h, tok_r)
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ours.mean() == pytest.approx(mean, abs=1e-12)
    assert ours.max() > 0.5  # the comparison is not between two vectors of zeros


def test_local_evaluate_modules_load_offline_and_match_the_core(tmp_path):
    hyps, refs = corpus(20, 2)
    cider = evaluate.load(metric_path("cider_d"), cache_dir=str(tmp_path))
    assert cider.compute(predictions=hyps, references=refs)["cider_d"] == pytest.approx(
        cider_d_scores([tokenized(h) for h in hyps], [[tokenized(r) for r in rs] for rs in refs]).mean()
    )
    both = evaluate.load(metric_path("bleu_chrf"), cache_dir=str(tmp_path)).compute(
        predictions=hyps, references=refs
    )
    assert both["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, streams(refs)).score)
    assert both["chrf++"] == pytest.approx(sacrebleu.corpus_chrf(hyps, streams(refs), word_order=2).score)
    assert both["bleu_signature"].startswith("nrefs:var|") and "tok:13a" in both["bleu_signature"]
    rouge = evaluate.load(metric_path("rouge_l"), cache_dir=str(tmp_path)).compute(
        predictions=hyps, references=refs
    )
    assert rouge["rouge_l"] == pytest.approx(rouge_l_scores(hyps, refs).mean())


def test_rouge_l_keeps_accented_spanish_and_portuguese_words_whole():
    assert tokenize("¡La paella de España, já com pão!") == [
        "la",
        "paella",
        "de",
        "españa",
        "já",
        "com",
        "pão",
    ]
    # LCS "paella de españa" = 3 of 4 tokens each way -> F = 0.75 (rouge-score's default tokenizer splits
    # "España" into "espa" + "a" and would give a different value)
    es = rouge_l_scores(["La paella de España"], [["Paella típica de España", "otra cosa"]])
    assert es[0] == pytest.approx(0.75)
    pt = rouge_l_scores(["Pão de queijo"], [["pão de queijo mineiro"]])
    assert pt[0] == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    from rouge_score.rouge_scorer import RougeScorer

    default = (
        RougeScorer(["rougeL"]).score("Paella típica de España", "La paella de España")["rougeL"].fmeasure
    )
    assert default != pytest.approx(0.75)


def test_reference_metrics_reward_the_better_caption():
    # two images: CIDEr's idf is log(number of images), zero for a single one (as in coco-caption)
    refs = [
        ["Tacos al pastor con piña en un puesto de la Ciudad de México."],
        ["Un mercado de frutas en Lima."],
    ]
    good = reference_metrics(
        ["Tacos al pastor con piña en un puesto callejero.", "Un mercado de frutas."], refs
    )
    bad = reference_metrics(["Una hamburguesa con papas.", "Un mercado de frutas."], refs)
    assert all(g.corpus() > b.corpus() for g, b in zip(good, bad, strict=True))


def test_batched_bleu_and_chrf_equal_sacrebleu_on_random_summed_statistics():
    import numpy as np

    from eval.metrics.core import bleu_batch, bleu_metric, chrf_batch, chrf_metric

    hyps, refs = corpus(300, 3)
    hyps[:5] = ["", "x", "Un taco", "zzz yyy", "tortilla"]  # empty, no match, short: the edge cases
    rng = np.random.default_rng(0)
    for stats in (bleu_stats(hyps, refs), chrf_stats(hyps, refs)):
        metric = bleu_metric() if stats.name == "bleu" else chrf_metric()
        batch = (bleu_batch if stats.name == "bleu" else chrf_batch)(metric)
        sums = np.vstack([stats.rows[:k].sum(axis=0) for k in range(1, 8)]
                         + [rng.multinomial(40, np.ones(len(hyps)) / len(hyps)) @ stats.rows for _ in range(200)])  # fmt: skip
        expected = [stats.finalize(row) for row in sums]
        assert batch(sums) == pytest.approx(expected, abs=1e-9)


def test_scoring_in_two_processes_equals_one():
    hyps, refs = corpus(250, 4)
    one = reference_metrics(hyps, refs, workers=1)
    two = reference_metrics(hyps, refs, workers=2)
    for a, b in zip(one, two, strict=True):
        assert a.name == b.name and (a.rows == b.rows).all() and a.corpus() == b.corpus()
    assert two[0].corpus() == pytest.approx(sacrebleu.corpus_bleu(hyps, streams(refs)).score)
