"""Seq2seq: attention, teacher forcing, greedy and beam decoding, the toy
tasks and their smoke training runs."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import train
from experiments import translate
from experiments.configs import addition as addition_config
from experiments.configs import reversal as reversal_config
from models import decoding
from models import seq2seq as s2s
from tasks import addition
from tasks import reversal
from tasks import seq2seq as seq2seq_task

V = 13  # target and source vocabulary in the model tests


def _data(seed=0, batch=4, src_len=7, tgt_len=9):
  rng = np.random.default_rng(seed)
  inputs = rng.integers(3, V, (batch, src_len)).astype(np.int32)
  lengths = np.array([src_len, 3, 1, 5][:batch], np.int32)
  for b, length in enumerate(lengths):
    inputs[b, length:] = s2s.PAD
  targets = rng.integers(3, V, (batch, tgt_len)).astype(np.int32)
  dec_in = np.concatenate([np.full((batch, 1), s2s.BOS, np.int32),
                           targets[:, :-1]], 1)
  return jnp.asarray(inputs), jnp.asarray(lengths), jnp.asarray(dec_in)


@functools.lru_cache(maxsize=None)
def _model(attention="bahdanau", input_feeding=False, bidirectional=False,
           cell="lstm", reverse_source=False, num_layers=1):
  model = s2s.Seq2seq(V, V, embed_size=6, hidden_size=8, num_layers=num_layers,
                      cell=cell, attention=attention, input_feeding=input_feeding,
                      bidirectional=bidirectional, reverse_source=reverse_source)
  inputs, lengths, dec_in = _data()
  params = jax.jit(model.init)(jax.random.PRNGKey(1), inputs, lengths, dec_in)
  # Sharper output distributions than at init, so beams differ from greedy.
  params = jax.tree_util.tree_map(lambda x: x * 3.0, params["params"])
  return model, params


@functools.partial(jax.jit, static_argnames="model")
def _apply(model, params, inputs, lengths, dec_in):
  return model.apply({"params": params}, inputs, lengths, dec_in,
                     method=s2s.Seq2seq.teacher_forced)


_rescore = jax.jit(s2s.sequence_log_probs, static_argnums=0)

MAX_LEN = 8
ALPHA = 0.7
VARIANTS = [dict(attention="bahdanau", bidirectional=True, cell="gru"),
            dict(attention="general", input_feeding=True, reverse_source=True,
                 num_layers=2)]


@functools.lru_cache(maxsize=None)
def _decodes(index):
  """(model, params, greedy, beam size 1, beam size 4) for VARIANTS[index]."""
  model, params = _model(**VARIANTS[index])
  inputs, lengths, _ = _data()
  greedy = s2s.greedy_decode(model, params, inputs, lengths, max_len=MAX_LEN)
  beam1 = s2s.beam_search(model, params, inputs, lengths, beam_size=1,
                          max_len=MAX_LEN, alpha=ALPHA)
  beam4 = s2s.beam_search(model, params, inputs, lengths, beam_size=4,
                          max_len=MAX_LEN, alpha=ALPHA)
  return model, params, greedy, beam1, beam4


# ----------------------------------------------------------------------------
# Decoding.

@pytest.mark.parametrize("index", range(len(VARIANTS)))
def test_beam_size_one_equals_greedy(index):
  _, _, greedy, beam, _ = _decodes(index)
  np.testing.assert_array_equal(beam.tokens[:, 0], greedy.tokens)
  np.testing.assert_array_equal(beam.lengths[:, 0], greedy.lengths)
  np.testing.assert_allclose(beam.log_probs[:, 0], greedy.log_probs, atol=1e-5)


@pytest.mark.parametrize("index", range(len(VARIANTS)))
def test_beams_are_sorted_and_scores_equal_teacher_forced_rescoring(index):
  model, params, greedy, _, beams = _decodes(index)
  inputs, lengths, _ = _data()
  scores = np.asarray(beams.scores)
  assert np.all(np.diff(scores, axis=1) <= 1e-6)               # best first
  np.testing.assert_allclose(
      scores, beams.log_probs / np.asarray(beams.lengths, np.float32) ** ALPHA,
      rtol=1e-5)
  # All B x K hypotheses rescored in one teacher-forced pass.
  rescored = _rescore(model, params, jnp.repeat(inputs, 4, axis=0),
                      jnp.repeat(lengths, 4, axis=0),
                      beams.tokens.reshape(16, MAX_LEN), beams.lengths.reshape(16))
  np.testing.assert_allclose(rescored.reshape(4, 4), beams.log_probs, rtol=1e-4,
                             atol=1e-4)
  # Distinct hypotheses per sentence, and the best beam scores at least greedy.
  for b in range(inputs.shape[0]):
    outs = {tuple(np.asarray(beams.tokens[b, k, :beams.lengths[b, k]]))
            for k in range(4)}
    assert len(outs) == 4
  greedy_scores = greedy.log_probs / np.asarray(greedy.lengths, np.float32) ** ALPHA
  assert np.all(scores[:, 0] >= np.asarray(greedy_scores) - 1e-5)


def _with_eos_bias(params, bias):
  out = dict(params["decoder"]["out"])
  out["b"] = out["b"].at[s2s.EOS].add(bias)
  return {**params, "decoder": {**params["decoder"], "out": out}}


def test_decoding_stops_at_eos_and_respects_max_len():
  model, params = _model(**VARIANTS[0])
  inputs, lengths, _ = _data()
  eager = _with_eos_bias(params, 100.0)
  for hyps in (s2s.greedy_decode(model, eager, inputs, lengths, max_len=MAX_LEN),
               jax.tree_util.tree_map(lambda x: x[:, 0], s2s.beam_search(
                   model, eager, inputs, lengths, beam_size=4, max_len=MAX_LEN))):
    np.testing.assert_array_equal(hyps.lengths, 1)
    np.testing.assert_array_equal(hyps.tokens[:, 0], s2s.EOS)
    np.testing.assert_array_equal(hyps.tokens[:, 1:], s2s.PAD)
    assert np.all(hyps.finished)
  never = _with_eos_bias(params, -100.0)
  hyps = s2s.greedy_decode(model, never, inputs, lengths, max_len=MAX_LEN)
  assert hyps.tokens.shape == (4, MAX_LEN)
  np.testing.assert_array_equal(hyps.lengths, MAX_LEN)
  assert not np.any(hyps.finished)
  beams = s2s.beam_search(model, never, inputs, lengths, beam_size=4,
                          max_len=MAX_LEN)
  np.testing.assert_array_equal(beams.lengths, MAX_LEN)
  # Natural stops: after EOS only PAD, and PAD/BOS are never produced before.
  hyps = s2s.greedy_decode(model, params, inputs, lengths, max_len=MAX_LEN)
  for row, length in zip(np.asarray(hyps.tokens), np.asarray(hyps.lengths)):
    assert np.all(row[:length - 1] >= 3)
    if length < MAX_LEN or row[length - 1] == s2s.EOS:
      np.testing.assert_array_equal(row[length:], s2s.PAD)


# ----------------------------------------------------------------------------
# Attention and teacher forcing.

@pytest.mark.parametrize("variant", VARIANTS + [dict(attention="dot")])
def test_attention_weights_sum_to_one_and_ignore_padding(variant):
  model, params = _model(**variant)
  inputs, lengths, dec_in = _data()
  _, weights = _apply(model, params, inputs, lengths, dec_in)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  pad = np.arange(inputs.shape[1])[None, :] >= np.asarray(lengths)[:, None]
  assert np.all(np.asarray(weights)[np.broadcast_to(pad[:, None, :], weights.shape)] == 0.0)
  _, attn = s2s.greedy_decode(model, params, inputs, lengths, max_len=MAX_LEN,
                              return_attention=True)
  assert np.all(np.asarray(attn)[np.broadcast_to(pad[:, None, :], attn.shape)] == 0.0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_source_padding_does_not_change_the_output(variant):
  model, params = _model(**variant)
  inputs, lengths, dec_in = _data()
  wider = jnp.concatenate([inputs, jnp.full((4, 3), 7, jnp.int32)], axis=1)
  narrow = _apply(model, params, inputs, lengths, dec_in)[0]
  wide = _apply(model, params, wider, lengths, dec_in)[0]
  np.testing.assert_allclose(narrow, wide, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS + [
    dict(attention="general", num_layers=2), dict(attention="none"),
    dict(attention="dot", input_feeding=True)])
def test_decoder_step_reproduces_teacher_forcing(variant):
  """Decoder.step in a Python loop, one token at a time, gives the logits
  and attention weights of the teacher-forced pass: the whole-sequence RNN
  path (Luong without input feeding, no attention) and the scan path."""
  model, params = _model(**variant)
  inputs, lengths, dec_in = _data()
  logits, weights = _apply(model, params, inputs, lengths, dec_in)

  @jax.jit
  def step_by_step(params, inputs, lengths, dec_in):
    variables = {"params": params}
    encoded = model.apply(variables, inputs, lengths, method=s2s.Seq2seq.encode)
    carry = model.apply(variables, encoded, method=s2s.Seq2seq.initial_carry)
    stepped = []
    for t in range(dec_in.shape[1]):
      carry, logits_t, weights_t = model.apply(
          variables, carry, dec_in[:, t], encoded,
          method=s2s.Seq2seq.decode_step)
      stepped.append((logits_t, weights_t))
    return tuple(jnp.stack(x, 1) for x in zip(*stepped))
  step_logits, step_weights = step_by_step(params, inputs, lengths, dec_in)
  np.testing.assert_allclose(logits, step_logits, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(weights, step_weights, rtol=1e-4, atol=1e-6)


def test_reverse_source_reads_each_source_backwards_within_its_length():
  model, params = _model(attention="none", reverse_source=True)
  plain, _ = _model(attention="none")
  inputs, lengths, dec_in = _data()
  flipped = np.asarray(inputs).copy()
  for b, length in enumerate(np.asarray(lengths)):
    flipped[b, :length] = flipped[b, :length][::-1]
  np.testing.assert_allclose(
      _apply(model, params, inputs, lengths, dec_in)[0],
      _apply(plain, params, jnp.asarray(flipped), lengths, dec_in)[0],
      rtol=1e-5, atol=1e-5)


def test_loss_ignores_padding():
  batch = seq2seq_task.make_batch([[3, 4], [5]], [[6, 7, 8], [9]], 4, 5, rows=3)
  np.testing.assert_array_equal(batch["target_lengths"], [4, 2, 0])
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(3, 5, V)), jnp.float32)
  loss, sums = seq2seq_task.loss(logits, batch)
  # Garbage on padded steps and on the padding row changes nothing.
  mask = np.arange(5)[None, :] < batch["target_lengths"][:, None]
  noisy = jnp.where(jnp.asarray(mask)[..., None], logits,
                    jnp.asarray(rng.normal(size=(3, 5, V)) * 50, jnp.float32))
  loss2, sums2 = seq2seq_task.loss(noisy, batch)
  assert float(loss) == pytest.approx(float(loss2), rel=1e-6)
  assert float(sums["tokens"]) == 6 and float(sums["sequences"]) == 2
  expected = -np.mean([jax.nn.log_softmax(logits[b, t])[batch["targets"][b, t]]
                       for b in range(3) for t in range(5) if mask[b, t]])
  assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_exact_match_by_source_length():
  sources = [[3], [3, 4], [3, 4, 5], [3, 4, 5, 6], [3, 4, 5, 6, 7]]
  batch = seq2seq_task.make_batch(sources, sources, 5, 6, rows=6)
  # Perfect logits, then spoil the first target step of rows 1 and 3.
  logits = np.where(np.arange(V) == batch["targets"][..., None], 10.0, 0.0)
  logits[[1, 3], 0] = np.where(np.arange(V) == 0, 20.0, 0.0)
  buckets = seq2seq_task.parse_length_buckets("1-2,3-5,10-12")
  _, sums = seq2seq_task.loss(jnp.asarray(logits, jnp.float32), batch, buckets)
  metrics = seq2seq_task.summarize(jax.device_get(sums))
  # Lengths 1, 2 -> row 1 wrong; lengths 3, 4, 5 -> row 3 wrong; padding row 5 ignored.
  assert metrics["sequence_accuracy_len_1-2"] == pytest.approx(1 / 2)
  assert metrics["sequence_accuracy_len_3-5"] == pytest.approx(2 / 3)
  assert metrics["sequence_accuracy"] == pytest.approx(3 / 5)
  assert metrics["sequence_accuracy_len_10-12"] == 0.0        # empty bucket
  assert [k for k in metrics if "_len_" in k] == [
      "sequence_accuracy_len_1-2", "sequence_accuracy_len_3-5",
      "sequence_accuracy_len_10-12"]
  assert seq2seq_task.even_length_buckets(24) == "1-6,7-12,13-18,19-24"
  with pytest.raises(ValueError, match="length_buckets: expected ranges"):
    seq2seq_task.parse_length_buckets("0-3")


def test_teacher_forced_exact_match_is_greedy_exact_match():
  model, params, _, _, _ = _decodes(0)
  params = _with_eos_bias(params, 3.0)   # so that some outputs end early
  inputs, lengths, _ = _data()
  greedy = s2s.greedy_decode(model, params, inputs, lengths, max_len=MAX_LEN)
  targets = []
  for b in range(4):
    out = [int(t) for t in greedy.tokens[b, :greedy.lengths[b]] if t != s2s.EOS]
    if b % 2 or not greedy.finished[b]:  # spoil odd rows (and unfinished ones)
      out = (out + [3])[:5] if out else [3]
      out[0] = 3 if out[0] != 3 else 4
    targets.append(out)
  batch = seq2seq_task.make_batch([list(np.asarray(inputs[b, :lengths[b]]))
                                   for b in range(4)], targets, 7, MAX_LEN + 1)
  logits = _apply(model, params, batch["inputs"], batch["lengths"],
                  batch["decoder_inputs"])[0]
  _, sums = seq2seq_task.loss(logits, batch)
  finished = np.asarray(greedy.finished)
  assert int(sums["exact"]) == int(np.sum(finished[::2]))
  assert int(sums["exact"]) > 0


def test_bad_model_settings_are_clear_errors():
  inputs, lengths, dec_in = _data()
  for kwargs, word in [(dict(attention="luong"), "attention"),
                       (dict(attention="dot", bidirectional=True), "dot"),
                       (dict(attention="bahdanau", input_feeding=True), "input_feeding"),
                       (dict(bidirectional=True, bridge="copy"), "bridge")]:
    with pytest.raises(ValueError, match=word):
      s2s.Seq2seq(V, V, **kwargs).init(jax.random.PRNGKey(0), inputs, lengths,
                                       dec_in)


# ----------------------------------------------------------------------------
# Toy tasks.

def test_addition_pairs_are_held_out_and_correct():
  rng = np.random.default_rng(0)
  a, b = addition.sample_pairs(rng, 3000, 3, "train")
  assert set(addition.part_of(a, b, 3)) == {"train"}
  va, vb = addition.sample_pairs(rng, 300, 3, "valid")
  assert set(addition.part_of(va, vb, 3)) == {"valid"}
  # About 1% of all pairs in each held-out part.
  grid = np.arange(1000)
  parts = addition.part_of(np.repeat(grid, 1000), np.tile(grid, 1000), 3)
  assert 0.009 < np.mean(parts == "valid") < 0.011
  batch = addition.make_batch(rng, 50, num_digits=3, part="test")
  vocab = addition.VOCAB
  for row in range(50):
    source = vocab.decode(batch["inputs"][row, :batch["lengths"][row]])
    target = vocab.decode(batch["targets"][row])
    x, y = source.split("+")
    assert int(x) + int(y) == int(target)


def test_bucketed_batches_resume_exactly():
  rng = np.random.default_rng(0)
  examples = [(list(rng.integers(3, 9, rng.integers(1, 15))),
               list(rng.integers(3, 9, rng.integers(1, 15)))) for _ in range(200)]
  stream = seq2seq_task.BucketedBatches(examples, 8, (8, 16), seed=3)
  first = [next(stream) for _ in range(40)]          # crosses an epoch
  assert stream.batches_per_epoch < 40
  state = json.loads(json.dumps(stream.get_state()))
  rest = [next(stream) for _ in range(5)]
  again = seq2seq_task.BucketedBatches(examples, 8, (8, 16), seed=3)
  again.set_state(state)
  for x, y in zip(rest, [next(again) for _ in range(5)]):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  for batch in first:
    assert batch["inputs"].shape[1] in (8, 16)
    assert batch["inputs"].shape[0] == 8
  with pytest.raises(ValueError, match="does not belong"):
    seq2seq_task.BucketedBatches(examples[:100], 8, (8, 16), seed=3).set_state(state)


def _shrink(config, workdir_steps=30):
  config.num_train_steps = workdir_steps
  config.eval_every_steps = workdir_steps
  config.log_every_steps = 10
  config.num_eval_examples = 64
  config.eval_batch_size = 64
  config.batch_size = 16
  config.hidden_size = 16
  config.embed_size = 8
  config.progress_bar = False
  return config


def test_addition_smoke_training_and_translate(tmp_path, capsys):
  config = _shrink(addition_config.get_config("2"))
  config.attention, config.input_feeding = "none", False   # compiles faster
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["step"] == 30
  assert 0.0 <= summary["metrics"]["test"]["sequence_accuracy"] <= 1.0
  loaded = translate.load(str(tmp_path))
  lines = ["12+34", "", "1x2+3", "99999+1", "+"]
  results = translate.translate_lines(loaded, lines, beam_size=2)
  assert len(results) == 5
  assert results[1].text == "" and "empty" in results[1].note
  assert "x" in results[2].note
  assert "cut" in results[3].note
  assert all(set(r.text) <= set("0123456789+") for r in results)


def test_reversal_and_copy_targets():
  for copy in (False, True):
    batch = reversal.make_batch(np.random.default_rng(0), 8, max_len=6,
                                num_symbols=5, copy=copy)
    for b in range(8):
      n = int(batch["lengths"][b])
      source = batch["inputs"][b, :n].tolist()
      assert batch["targets"][b, :n].tolist() == (source if copy else source[::-1])
      assert batch["targets"][b, n] == seq2seq_task.EOS


def test_reversal_smoke_training(tmp_path):
  config = _shrink(reversal_config.get_config())
  config.max_len = 5
  config.max_decode_len = 6
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["step"] == 30
  assert summary["metrics"]["valid"]["sequences"] == 64


def test_decoders_take_any_step_function():
  """models.decoding needs only step(state, tokens) -> (state, logits, aux):
  here a bigram table, whose greedy output is the chain of row argmaxes."""
  table = jnp.asarray(np.random.default_rng(0).normal(size=(8, 8)) * 3,
                      jnp.float32).at[:, :2].set(s2s.NEG)     # no PAD, BOS

  def step(count, tokens):
    return count + 1, table[tokens], count

  hyps, counts = decoding.greedy(step, jnp.zeros((2,), jnp.int32), 2,
                                 max_len=5, record_aux=True)
  chain, token = [], s2s.BOS
  for _ in range(5):
    token = int(jnp.argmax(table[token]))
    chain.append(token)
    if token == s2s.EOS:
      break
  want = chain + [s2s.PAD] * (5 - len(chain))
  np.testing.assert_array_equal(hyps.tokens, [want, want])
  np.testing.assert_array_equal(counts[0, :len(chain)], np.arange(len(chain)))
  beams = decoding.beam_search(step, jnp.zeros((6,), jnp.int32), 2,
                               beam_size=3, max_len=5, alpha=0.0)
  assert np.all(np.asarray(beams.scores[:, 0]) >= np.asarray(hyps.log_probs) - 1e-5)
