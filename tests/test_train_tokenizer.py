"""soulc train's BPE tokenizer and corpus reader (no torch needed)."""
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soulc.errors import SoulcError
from soulc.ir.chat import encode
from soulc.train.corpus import parse_corpus, read_corpus, unique_prompts
from soulc.train.tokenizer import SPECIALS, apply_merge, as_tokenizer, train_bpe

REPO = Path(__file__).resolve().parents[1]
SEED = Path(__file__).resolve().parents[2] / "shared" / "seed"
STARTER = REPO / "examples" / "starter_corpus.txt"


def texts(exchanges):
    return [e.prompt for e in exchanges] + [e.response for e in exchanges]


def test_seed_corpus_tokenizer_has_the_seed_layout():
    data = train_bpe(texts(read_corpus(SEED / "corpus.txt")), 128)
    tokens = sorted(data["vocab"], key=data["vocab"].get)
    assert data["vocab_size"] == len(tokens) == 128
    assert tokens[:4] == list(SPECIALS)
    assert tokens[4] == " " and tokens[5:31] == [chr(c) for c in range(ord("a"), ord("z") + 1)]
    assert all(32 <= ord(ch) <= 126 for t in tokens[4:] for ch in t)
    assert all(" " not in t for t in tokens[5:])
    assert len(set(tokens)) == len(tokens)
    singles = sum(len(t) == 1 for t in tokens[4:])
    assert len(data["merges"]) == 128 - 4 - singles
    for (a, b), merged in zip(data["merges"], tokens[4 + singles:]):
        assert a + b == merged                  # one token per merge, in merge order


def test_training_is_deterministic_and_json_stable():
    corpus = texts(read_corpus(STARTER))
    first, second = train_bpe(corpus, 96), train_bpe(list(corpus), 96)
    assert json.dumps(first) == json.dumps(second)


def test_training_segmentation_is_the_chat_loops():
    """Encoding with ir/chat.py's rules gives fewer tokens than characters and round-trips the text."""
    exchanges = read_corpus(STARTER)
    tok = as_tokenizer(train_bpe(texts(exchanges), 128))
    for e in exchanges:
        for text in (e.prompt, e.response):
            ids = encode(tok, text)
            assert "".join(tok.tokens[i] for i in ids) == text.lower()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab c!'", min_size=1, max_size=12), min_size=1, max_size=8), st.integers(8, 40))
def test_any_corpus_gives_a_valid_tokenizer(corpus, vocab):
    data = train_bpe(corpus, vocab)
    tok = as_tokenizer(data)
    assert len(tok.tokens) <= vocab
    assert tok.special == frozenset(range(4))
    for text in corpus:         # characters that did not fit the vocabulary are dropped
        kept = "".join(ch for ch in text.lower() if ch in tok.char_ids)
        assert "".join(tok.tokens[i] for i in encode(tok, text)) == kept


def test_uppercase_and_unprintable_characters():
    tok = as_tokenizer(train_bpe(["Hello World\u00e9\t", "HELLO"], 16))
    assert "H" not in tok.tokens and "\u00e9" not in tok.tokens and "\t" not in tok.tokens
    assert "".join(tok.tokens[i] for i in encode(tok, "HeLLo")) == "hello"


def test_no_merge_spells_a_special_token():
    tok = as_tokenizer(train_bpe(["<x> <x> <x> <x>"] * 5, 20))
    assert tok.special == frozenset(range(4))


def test_apply_merge_is_one_non_overlapping_pass():
    assert apply_merge([5, 5, 5], 5, 5, 9) == [9, 5]
    assert apply_merge([5, 6, 5, 6], 5, 6, 9) == [9, 9]


@pytest.mark.parametrize("vocab", [4, 7, 257])
def test_vocab_size_limits(vocab):
    with pytest.raises(SoulcError, match="--vocab"):
        train_bpe(["hello"], vocab)


def test_corpus_format_errors():
    with pytest.raises(SoulcError, match=r"corpus:2: not an exchange"):
        parse_corpus("<SEP>hi<SEP>hello<SEP>\nhi there\n")
    with pytest.raises(SoulcError, match="empty"):
        parse_corpus("<SEP><SEP>hello<SEP>\n")
    with pytest.raises(SoulcError, match="no exchanges"):
        parse_corpus("# only a comment\n\n")
    exchanges = parse_corpus("# c\n<SEP>a<SEP>b<SEP>\n\n<SEP>a<SEP>c<SEP>\r\n")
    assert [(e.prompt, e.response) for e in exchanges] == [("a", "b"), ("a", "c")]
    assert unique_prompts(exchanges) == ["a"]


def test_starter_corpus_is_ours_and_well_formed():
    exchanges = read_corpus(STARTER)
    assert len(exchanges) >= 40
    seed_lines = set((SEED / "corpus.txt").read_text().splitlines())
    assert not any(f"<SEP>{e.prompt}<SEP>{e.response}<SEP>" in seed_lines for e in exchanges)
