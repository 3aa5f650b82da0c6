"""The generated long-time-lag problems: data checked by independent rules."""

import re

import jax.numpy as jnp
import numpy as np
import pytest

from tasks import adding, reber, temporal_order


def test_adding_batches_follow_the_definition():
  batch = adding.make_batch(np.random.default_rng(0), 64, seq_len=30)
  values, markers = batch["inputs"][..., 0], batch["inputs"][..., 1]
  assert batch["inputs"].shape == (64, 30, 2)
  np.testing.assert_array_equal(markers.sum(1), 2.0)
  np.testing.assert_array_equal(markers[:, :15].sum(1), 1.0)  # one per half
  assert values.min() >= 0 and values.max() <= 1
  np.testing.assert_allclose(batch["targets"], (values * markers).sum(1), rtol=1e-6)
  np.testing.assert_array_equal(batch["lengths"], 30)


def test_adding_baseline_mse_is_one_sixth():
  batch = adding.make_batch(np.random.default_rng(1), 20000, seq_len=10)
  _, sums = adding.loss(jnp.ones((20000, 1)), batch)
  metrics = adding.summarize({k: float(v) for k, v in sums.items()})
  assert abs(metrics["mse"] - 1 / 6) < 0.005
  assert not adding.solved(metrics)
  _, sums = adding.loss(jnp.asarray(batch["targets"])[:, None] + 0.03, batch)
  assert adding.solved(adding.summarize({k: float(v) for k, v in sums.items()}))


@pytest.mark.parametrize("variant", ["6a", "6b"])
def test_temporal_order_labels_encode_the_relevant_symbols(variant):
  batch = temporal_order.make_batch(np.random.default_rng(2), 200, variant=variant)
  symbols = np.argmax(batch["inputs"], -1)
  for b in range(200):
    length = batch["lengths"][b]
    assert 100 <= length <= 110
    text = "".join(temporal_order.SYMBOLS[s] for s in symbols[b, :length])
    assert text[0] == "B" and text[-1] == "E"
    assert re.fullmatch(r"B[abcdXY]+E", text)
    relevant = [(t, ch) for t, ch in enumerate(text) if ch in "XY"]
    assert len(relevant) == len(temporal_order.POSITIONS[variant])
    for (t, _), (low, high) in zip(relevant, temporal_order.POSITIONS[variant]):
      assert low <= t <= high
    label = int("".join("1" if ch == "Y" else "0" for _, ch in relevant), 2)
    assert label == batch["labels"][b]
    assert not batch["inputs"][b, length:].any()


# Reber grammar as a regular expression, derived by hand from the state graph
# (independent of the generator's transition table).
_REBER = r"B(TS*X(XT*VP)*(S|XT*VV)|PT*V(V|P(XT*VP)*(S|XT*VV)))E"
_EMBEDDED = re.compile(rf"B(T{_REBER}T|P{_REBER}P)E")


def test_reber_strings_are_in_the_grammar_and_targets_are_consistent():
  rng = np.random.default_rng(3)
  for _ in range(500):
    string, nexts = reber.embedded_string(rng)
    assert _EMBEDDED.fullmatch(string), string
    for t in range(len(string) - 1):
      assert string[t + 1] in nexts[t]         # the real next symbol is allowed
    # The long time lag: after the inner E only the second symbol may follow.
    assert nexts[len(string) - 3] == {string[1]}


def test_reber_batches_and_metric():
  batch = reber.make_batch(np.random.default_rng(4), 32, max_len=30)
  assert batch["inputs"].shape == (32, 29, 7)
  assert batch["lengths"].max() <= 29
  perfect = jnp.asarray(batch["targets"] * 10.0 - 5.0)
  _, sums = reber.loss(perfect, batch)
  assert int(sums["wrong_strings"]) == 0
  # Garbage on padding changes nothing.
  mask = np.arange(29)[None, :] < batch["lengths"][:, None]
  garbage = 100.0 * np.random.default_rng(5).normal(size=perfect.shape)
  noisy = jnp.where(mask[..., None], perfect, garbage)
  loss_a, sums_a = reber.loss(perfect, batch)
  loss_b, sums_b = reber.loss(noisy, batch)
  np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
  assert int(sums_b["wrong_strings"]) == 0
  # One wrong step makes its string wrong: swap the top choice at the lag step.
  lag = batch["lengths"][0] - 2
  broken = np.array(perfect)
  broken[0, lag] = -broken[0, lag]
  _, sums = reber.loss(jnp.asarray(broken), batch)
  assert int(sums["wrong_strings"]) == 1
