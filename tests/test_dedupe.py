"""Cross-language near-duplicates, on the demo corpus's real bilingual pairs and the pairs that look alike."""

from __future__ import annotations

import numpy as np
import pytest

from newsrec.config import Settings
from newsrec.data.corpus import load_corpus
from newsrec.dedupe import figures, same_story_groups
from newsrec.embedders import get_embedder

# The same story in Chinese and English (read side by side): opening-night game, NBA Cup game, Apple's
# October launch, the Sichuan earthquake.
SAME = [("n016", "n015"), ("n025", "n026"), ("n030", "n029"), ("n046", "n047")]
# Close but different stories: other Lakers games (cosine up to 0.70), the same 400 Wh/kg figure five weeks
# apart, the rescue and the drones of one quake, the headset's weight and its China launch.
DIFFERENT = [("n015", "n021"), ("n016", "n024"), ("n024", "n028"), ("n001", "n012"), ("n048", "n049"), ("n031", "n035")]


@pytest.fixture(scope="module")
def demo():
    corpus = load_corpus(Settings(corpus="demo"))
    embedder = get_embedder("lite")
    wanted = sorted({news_id for pair in SAME + DIFFERENT for news_id in pair})
    vectors = dict(zip(wanted, embedder.embed_documents([corpus.news[i] for i in wanted]), strict=True))
    return corpus, embedder, vectors


def groups_of(demo, news_ids):
    corpus, embedder, vectors = demo
    groups = same_story_groups([corpus.news[i] for i in news_ids], np.stack([vectors[i] for i in news_ids]), embedder)
    return [[news_ids[m] for m in group] for group in groups]


@pytest.mark.parametrize("pair", SAME)
def test_one_story_in_two_languages_is_merged_into_the_first(demo, pair):
    assert groups_of(demo, list(pair)) == [list(pair)]


@pytest.mark.parametrize("pair", DIFFERENT)
def test_similar_but_different_stories_keep_their_slots(demo, pair):
    assert groups_of(demo, list(pair)) == [[pair[0]], [pair[1]]]


def test_a_list_keeps_its_order_and_one_item_per_language_per_slot(demo):
    order = ["n026", "n015", "n021", "n025", "n016", "n047", "n046"]
    assert groups_of(demo, order) == [["n026", "n025"], ["n015", "n016"], ["n021"], ["n047", "n046"]]
    assert same_story_groups([], np.zeros((0, 4)), None) == []


def test_figures_are_multi_digit_numbers_without_separators():
    assert figures("Lakers edge Warriors 118-112; LeBron 31, 3 steals, 6.8 magnitude, 4,300 threes") == {
        "118",
        "112",
        "31",
        "6.8",
        "4300",
    }
