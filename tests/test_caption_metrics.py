"""Caption metrics: CIDEr-D and BLEU against numbers from pycocoevalcap."""

import itertools

import numpy as np
import pytest
from sacrebleu.metrics import BLEU

from tasks import caption_metrics

# Six images, 2-5 references each. Hypotheses: close (0), a copy of a
# reference (1), sharing nothing with its references (2), repeated words that
# only clipping keeps in check (3, whose length 8 ties references of 7 and 9),
# short against its references (4), a partial paraphrase (5).
HYPOTHESES = [
    "a man riding a horse on the beach",
    "two dogs play in the snow",
    "red bus parked beside station",
    "a cat a cat on a a keyboard",
    "a bus",
    "a group of people cooking food in a kitchen",
]
REFERENCES = [
    ["a man is riding a horse on the beach",
     "a person rides a brown horse along the shore",
     "a man on a horse near the ocean"],
    ["two dogs play in the snow",
     "a pair of dogs running through snow",
     "two dogs are playing together in the white snow",
     "dogs playing in a snowy field",
     "two puppies romp in deep snow"],
    ["a plate of food with broccoli and rice",
     "a white plate topped with rice and vegetables"],
    ["a cat sleeping on a laptop keyboard",
     "a cat lies on top of the computer monitor",
     "an orange cat napping on a keyboard",
     "a sleepy cat resting on a laptop"],
    ["a red double decker bus driving down a city street",
     "a bus on the street"],
    ["a group of people standing around a kitchen",
     "people in a kitchen preparing food together",
     "several people cooking in a large kitchen"],
]
# No 4-gram of any hypothesis occurs in its references.
NO_4GRAM_HYPOTHESES = ["a man riding on a beach", "dogs in snow", "a plate"]
NO_4GRAM_REFERENCES = [
    ["a man is riding a horse on the beach", "a man on a beach"],
    ["two dogs play in the snow", "dogs in deep snow"],
    ["a plate of food", "a white plate with rice"],
]
# Two-word hypotheses: the corpus has no 3-grams or 4-grams at all.
SHORT_HYPOTHESES = ["a man", "two dogs", "a plate"]

# Computed with pycocoevalcap 1.2 (pure Python parts, in a virtualenv outside
# the repository) on the corpora above: Cider().compute_score(gts, res) and
# Bleu(4).compute_score(gts, res) with gts = {i: references[i]} and
# res = {i: [hypotheses[i]]}; its BLEU (0-1) times 100.
PYCOCO_CIDER = 1.9712147278523975
PYCOCO_CIDER_PER_IMAGE = [3.2096040648047635, 3.0370297933522536, 0.0,
                          1.196087195575586, 1.525644395549911, 2.85892291783187]
PYCOCO_BLEU = [71.05954943722786, 64.78706093350112, 54.27005086033929,
               46.79625033998186]
PYCOCO_BLEU_NO_4GRAM = [83.37529179235894, 65.91395566012565, 41.68764589418985,
                        0.0066986078857326405]
PYCOCO_BLEU_SHORT = [31.14032238107967, 31.140322378484647, 0.31140322381079677,
                     0.031140322382377184]

KEYS = ["bleu1", "bleu2", "bleu3", "bleu4"]


def _values(scores):
  return [scores[k] for k in KEYS]


def test_cider_d_matches_pycocoevalcap():
  mean, per_image = caption_metrics.cider_d(HYPOTHESES, REFERENCES)
  assert per_image.shape == (6,)
  np.testing.assert_allclose(per_image, PYCOCO_CIDER_PER_IMAGE, rtol=0, atol=1e-6)
  assert mean == pytest.approx(PYCOCO_CIDER, rel=0, abs=1e-6)


def test_bleu_is_sacrebleu_on_none_padded_streams():
  streams = [list(s) for s in itertools.zip_longest(*REFERENCES)]
  direct = [BLEU(tokenize="none", smooth_method="none", max_ngram_order=n,
                 force=True).corpus_score(HYPOTHESES, streams).score
            for n in range(1, 5)]
  assert _values(caption_metrics.bleu(HYPOTHESES, REFERENCES)) == direct


def test_bleu_matches_pycocoevalcap_when_every_order_has_matches():
  # Same closest-length rule (the tie at image 3 included) and clipping;
  # only pycocoevalcap's 1e-15 / 1e-9 epsilons differ.
  np.testing.assert_allclose(_values(caption_metrics.bleu(HYPOTHESES, REFERENCES)),
                             PYCOCO_BLEU, rtol=0, atol=1e-6)


def test_bleu_departs_from_pycocoevalcap_only_without_matches():
  no_4gram = _values(caption_metrics.bleu(NO_4GRAM_HYPOTHESES, NO_4GRAM_REFERENCES))
  np.testing.assert_allclose(no_4gram[:3], PYCOCO_BLEU_NO_4GRAM[:3], rtol=0, atol=1e-6)
  assert no_4gram[3] == 0.0 < PYCOCO_BLEU_NO_4GRAM[3] < 0.01
  short = _values(caption_metrics.bleu(SHORT_HYPOTHESES, NO_4GRAM_REFERENCES))
  np.testing.assert_allclose(short[:2], PYCOCO_BLEU_SHORT[:2], rtol=0, atol=1e-6)
  assert short[2:] == [0.0, 0.0]
  assert PYCOCO_BLEU_SHORT[2] > 0.3   # pycocoevalcap's 1e-6 precision


def test_missing_references_count_as_absent_not_as_empty():
  # Repeating a reference changes no BLEU statistic, so padding each image
  # to five references with its own first one is the same corpus.
  repeated = [list(refs) + [refs[0]] * (5 - len(refs)) for refs in REFERENCES]
  ours = caption_metrics.bleu(HYPOTHESES, REFERENCES)
  assert ours == caption_metrics.bleu(HYPOTHESES, repeated)
  # '' instead of None would be a 0-token reference: 'a bus' would take it as
  # its closest length and escape the brevity penalty.
  empty_padded = [list(s) for s in itertools.zip_longest(*REFERENCES, fillvalue="")]
  bleu4 = BLEU(tokenize="none", smooth_method="none", force=True)
  assert bleu4.corpus_score(HYPOTHESES, empty_padded).score > ours["bleu4"] + 1


def test_hypothesis_equal_to_all_references_scores_highest():
  captions = ["a man riding a horse on the beach", "two dogs play in the snow"]
  references = [[c] * 3 for c in captions]
  best = caption_metrics.bleu(captions, references)
  assert _values(best) == pytest.approx([100.0] * 4)
  for worse in (["a man riding a horse on the", captions[1]],
                ["a man riding a horse on the beach today", captions[1]],
                ["a horse riding a man on the beach", captions[1]]):
    scores = caption_metrics.bleu(worse, references)
    assert all(scores[k] < best[k] for k in KEYS[1:]), worse


def test_cider_d_is_zero_without_shared_ngrams():
  _, per_image = caption_metrics.cider_d(HYPOTHESES, REFERENCES)
  assert per_image[2] == 0.0
  assert np.all(np.delete(per_image, 2) > 0)
  # One image: every n-gram has idf log 1 - log 1 = 0.
  assert caption_metrics.cider_d(HYPOTHESES[:1], REFERENCES[:1])[0] == 0.0


def test_cider_d_length_penalty_uses_sigma():
  _, default = caption_metrics.cider_d(HYPOTHESES, REFERENCES)
  _, narrow = caption_metrics.cider_d(HYPOTHESES, REFERENCES, sigma=1.0)
  assert narrow[4] < default[4] / 2   # 'a bus': 3 tokens from its closest reference
  assert narrow[1] < default[1]       # references of other lengths count too


def test_exact_match():
  assert caption_metrics.exact_match(HYPOTHESES, REFERENCES) == pytest.approx(1 / 6)
  assert caption_metrics.exact_match([" two  dogs play in the snow"], REFERENCES[1:2]) == 1.0
  # Another image's reference does not count.
  assert caption_metrics.exact_match([REFERENCES[1][0]], REFERENCES[:1]) == 0.0


def test_caption_scores_gathers_all():
  scores = caption_metrics.caption_scores(HYPOTHESES, REFERENCES)
  assert sorted(scores) == sorted(KEYS + ["cider_d", "exact_match"])
  assert scores["cider_d"] == pytest.approx(PYCOCO_CIDER, abs=1e-6)
  assert scores["exact_match"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("metric", [caption_metrics.bleu, caption_metrics.cider_d,
                                    caption_metrics.exact_match,
                                    caption_metrics.caption_scores])
@pytest.mark.parametrize("hypotheses, references, message", [
    (["a cat", "a dog"], [["a cat"]], "2 hypotheses but 1 reference sets"),
    (["a cat", "a dog"], [["a cat"], []], "image 1 has no references"),
    ([], [], "empty corpus"),
    (["a cat"], ["a cat"], r"references\[0\] is a string"),
    (["a cat", "a dog"], [["a cat"], ["a dog", " "]], "reference 1 of image 1 is blank"),
    (["a cat"], [["a cat", None]], "reference 1 of image 0 is blank"),
])
def test_bad_inputs_raise(metric, hypotheses, references, message):
  with pytest.raises(ValueError, match=message):
    metric(hypotheses, references)


def test_cider_d_rejects_non_positive_sigma():
  with pytest.raises(ValueError, match="sigma must be positive"):
    caption_metrics.cider_d(HYPOTHESES, REFERENCES, sigma=0.0)
