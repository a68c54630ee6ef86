"""Listwise order shuffling and mapping scores back, on literals."""

import itertools
import math

from stages.score.judge_orders import averaged, in_input_order, judge_orders, shown


def test_orders_are_seeded_distinct_permutations():
    orders = judge_orders(4, 5, seed=7)
    assert orders == judge_orders(4, 5, seed=7)
    assert len(set(orders)) == 5
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert judge_orders(4, 5, seed=8) != orders


def test_more_orders_than_exist_gives_all_of_them_and_no_shuffle_gives_input_order():
    assert sorted(judge_orders(3, 10, seed=0)) == sorted(itertools.permutations(range(3)))
    assert len(judge_orders(9, 3, seed=0)) == 3 and math.factorial(9) > 720
    assert judge_orders(4, 1, seed=0, shuffle=False) == [(0, 1, 2, 3)]
    assert judge_orders(1, 3, seed=0) == [(0,)]


def test_scores_by_position_map_back_to_their_responses():
    order = (2, 0, 1)  # the judge sees c, a, b
    assert shown(["a", "b", "c"], order) == ["c", "a", "b"]
    assert in_input_order(order, [9.0, 5.0, 1.0]) == [5.0, 1.0, 9.0]


def test_averaging_two_orders_cancels_a_pure_position_bias():
    # A judge that gives position 1 a 10 and position 2 a 0 rates both responses 5 over both orders.
    assert averaged([(0, 1), (1, 0)], [[10.0, 0.0], [10.0, 0.0]]) == [5.0, 5.0]
    assert averaged([(0, 1), (1, 0)], [[8.0, 2.0], [4.0, 6.0]]) == [7.0, 3.0]
