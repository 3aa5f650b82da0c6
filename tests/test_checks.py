"""models.checks.check_one_of: the one wording of a bad-choice error."""

import pytest

from models.checks import check_one_of


def test_accepts_a_choice_from_tuple_list_set_and_dict():
  for choices in (("a", "b"), ["a", "b"], {"a", "b"}, {"a": 1, "b": 2}):
    check_one_of("opt", "b", choices)


def test_names_option_choices_and_value():
  with pytest.raises(ValueError, match=r"^opt: expected one of \('a', 'b'\) "
                     r"\(or '' for the default\), got 'c'$"):
    check_one_of("opt", "c", {"b", "a"}, " (or '' for the default)")


def test_unhashable_value_is_a_clear_error_not_a_type_error():
  with pytest.raises(ValueError, match=r"opt: expected one of \('a',\), got \['a'\]"):
    check_one_of("opt", ["a"], {"a"})
