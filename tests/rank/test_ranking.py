"""Ranking logic on literal scores: ties, duplicates, pair modes, margins, normalisation, sampling."""

import pytest

from stages.rank.ranking import dedupe, keep_top_k, make_pairs, normalize, rank_one, sort_best_first, subsample


def test_sort_is_stable_on_ties():
    assert sort_best_first([0, 1, 2, 3], [1.0, 2.0, 1.0, 2.0]) == [1, 3, 0, 2]


def test_dedupe_keeps_the_highest_score_of_each_text():
    # "a" appears at 0 (score 1) and 2 (score 3): index 2 stays; "b" twice with equal score: the first stays.
    assert dedupe(["a", "b", "a", "b"], [1.0, 0.5, 3.0, 0.5]) == [1, 2]


def test_pairs_all_skip_ties():
    # Scores best first: 3, 2, 2, 1 -> every strictly ordered pair; (1, 2) is a tie.
    assert make_pairs([3, 2, 2, 1], "all") == [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)]


def test_pairs_best_vs_rest_best_worst_and_adjacent():
    scores = [3, 3, 2, 1]
    assert make_pairs(scores, "best-vs-rest") == [(0, 2), (0, 3)]
    assert make_pairs(scores, "best-worst") == [(0, 3)]
    # Each response against the next lower level: 3s against the 2, the 2 against the 1.
    assert make_pairs(scores, "adjacent") == [(0, 2), (1, 2), (2, 3)]


def test_min_margin_is_inclusive():
    assert make_pairs([3.0, 2.5, 1.0], "all", min_margin=0.5) == [(0, 1), (0, 2), (1, 2)]
    assert make_pairs([3.0, 2.5, 1.0], "all", min_margin=0.6) == [(0, 2), (1, 2)]


def test_all_equal_and_single_response_give_no_pairs():
    assert rank_one(["a", "b", "c"], [1.0, 1.0, 1.0]).pairs == []
    assert rank_one(["a"], [2.0]).pairs == []
    # Two texts that are the same collapse into one response: no signal either.
    ranked = rank_one(["a", "a"], [1.0, 0.0])
    assert ranked.order == [0] and ranked.duplicates == 1 and ranked.pairs == []


def test_normalize_zscore_and_rank():
    z = normalize([1.0, 2.0, 3.0], "zscore")
    # mean 2, population std sqrt(2/3) = 0.8165
    assert z == pytest.approx([-1.224745, 0.0, 1.224745], abs=1e-6)
    # Worst 0, best 1; each tied 2.0 has one score below it plus half of its tie: 1.5 / (n - 1) = 0.5.
    assert normalize([1.0, 2.0, 2.0, 3.0], "rank") == [0.0, 0.5, 0.5, 1.0]
    assert normalize([4.0, 5.0], "none") == [4.0, 5.0]


def test_top_k_keeps_the_k_best_and_the_worst():
    assert keep_top_k([5, 4, 3, 2, 1], 2) == [5, 4, 1]
    assert keep_top_k([5, 4, 3], 2) == [5, 4, 3]
    ranked = rank_one(["a", "b", "c", "d", "e"], [5.0, 4.0, 3.0, 2.0, 1.0], top_k=2)
    assert ranked.order == [0, 1, 4] and ranked.cut_by_top_k == 2


def test_subsample_is_deterministic_per_seed_and_key():
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    first = subsample(pairs, 4, seed=1, key="p1")
    assert len(first) == 4 and first == sorted(first) and set(first) <= set(pairs)
    assert subsample(pairs, 4, seed=1, key="p1") == first
    assert any(subsample(pairs, 4, seed=s, key="p1") != first for s in range(2, 6))
    assert subsample(pairs, 100, seed=1, key="p1") == pairs


def test_rank_one_end_to_end():
    texts = ["ok", "great", "bad", "great"]
    scores = [1.0, 2.0, -1.0, 1.5]
    ranked = rank_one(texts, scores, mode="best-vs-rest")
    assert ranked.order == [1, 0, 2]
    assert ranked.scores == [2.0, 1.0, -1.0]
    assert ranked.pairs == [(0, 1), (0, 2)]
    assert ranked.duplicates == 1
