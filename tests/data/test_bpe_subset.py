"""GPT-2 BPE cut down to the ids a corpus uses: which ids stay, the byte fallback, round trips,
the spec, and prepare's "gpt2:N" name."""

import numpy as np
import pytest

from minigpt.data.prepare import make_tokenizer
from minigpt.data.tokenizer import SubsetBPETokenizer, Tokenizer

CORPUS = ["a gorgeous, heartfelt film", "a dull film", "the film is gorgeous"] * 3


@pytest.fixture(scope="module")
def gpt2():
    return Tokenizer.from_name("gpt2")


def test_subset_keeps_bytes_eot_then_the_most_frequent_ids(gpt2):
    tok = SubsetBPETokenizer.from_corpus("gpt2", CORPUS, n_vocab=259)
    assert (tok.name, tok.n_vocab) == ("gpt2:259", 259)
    assert sorted(tok.base_ids[:256]) == list(range(256))  # GPT-2's bytes: ids 0..255, permuted
    assert tok.base_ids[256] == gpt2.eot_id == 50256 and tok.eot_id == 256
    # " film" 9 times, " gorgeous" 6, every other multi-byte token 3 times
    assert tok.base_ids[257:] == gpt2.encode(" film gorgeous")


def test_ids_outside_the_subset_split_greedily_into_kept_tokens(gpt2):
    tok = SubsetBPETokenizer.from_corpus("gpt2", CORPUS, n_vocab=300)
    text = " films"  # GPT-2 has " films" as one token; the subset has " film" and "s"
    assert len(gpt2.encode(text)) == 1
    ids = tok.encode(text)
    assert [tok.decode([i]) for i in ids] == [" film", "s"]


@pytest.mark.parametrize(
    "text", ["a gorgeous film", "Ünïcödé 😀 «quotes»", "<|endoftext|> stays text", ""]
)
def test_every_text_round_trips(text):
    tok = SubsetBPETokenizer.from_corpus("gpt2", CORPUS, n_vocab=300)
    ids = tok.encode(text)
    assert all(0 <= i < tok.n_vocab for i in ids) and tok.eot_id not in ids
    assert tok.decode(ids) == text
    assert tok.encode_batch([text, text]) == [ids, ids]


def test_spec_round_trips_through_a_file(tmp_path):
    tok = SubsetBPETokenizer.from_corpus("gpt2", CORPUS, n_vocab=300)
    again = Tokenizer.load(tok.save(tmp_path))
    assert isinstance(again, SubsetBPETokenizer)
    assert again.to_spec() == tok.to_spec()
    assert again.encode("a heartfelt films") == tok.encode("a heartfelt films")


def test_prepare_builds_a_subset_from_the_documents():
    tok = make_tokenizer("gpt2:260", CORPUS)
    assert tok.n_vocab == 260 and tok.decode(tok.encode("dull")) == "dull"
    assert np.array(tok.encode("a dull film")).max() < 260
    assert make_tokenizer("gpt2:300", CORPUS).n_vocab == 263  # every id the corpus uses


def test_bad_subsets_are_clear_errors():
    with pytest.raises(ValueError, match="n_vocab >= 257"):
        SubsetBPETokenizer.from_corpus("gpt2", CORPUS, n_vocab=100)
    with pytest.raises(ValueError, match="unknown BPE 'gpt3'"):
        SubsetBPETokenizer.from_corpus("gpt3", CORPUS, n_vocab=300)
    with pytest.raises(ValueError, match="must keep every single-byte token"):
        SubsetBPETokenizer("gpt2", [50256, 1, 2])
    with pytest.raises(ValueError, match="<bpe>:<n_vocab>"):
        make_tokenizer("gpt2:many", CORPUS)
