"""SentencePiece tokenisation: special ids, caching, exact round trips, odd inputs."""

from __future__ import annotations

import pytest

from tmtlib import data
from tmtlib.pipeline import course_tokenizer
from tmtlib.subwords import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    Tokenizer,
    TokenizerSettings,
    lang_tag,
    normalize,
    train_tokenizer,
)

SYNTHETIC = [
    f"the {a} {b} sees {c} dogs near the river"
    for a in ("red", "big", "old")
    for b in ("cat", "man", "girl")
    for c in range(30)
]


def test_reserved_and_language_ids(toy_tokenizer):
    tokenizer = toy_tokenizer
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    tags = {tokenizer.lang_id(lang) for lang in ("en", "de", "fr", "cs")}
    assert len(tags) == 4 and min(tags) > EOS_ID and tokenizer.mask_id not in tags
    assert tokenizer.sp.id_to_piece(tokenizer.lang_id("de")) == lang_tag("de") == "<2de>"
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        tokenizer.lang_id("xx")


def test_the_course_vocabulary_has_8000_pieces(tokenizer):
    assert tokenizer.vocab_size == 8000


def test_round_trip_is_exact_on_the_toy_data(toy_tokenizer, toy_corpus):
    for lang in ("en", "de", "fr", "cs"):
        lines = data.read_lines(1, "val", lang) + data.read_lines(1, "train", lang)
        decoded = toy_tokenizer.decode(toy_tokenizer.encode(lines))
        assert decoded == [normalize(line) for line in lines], lang


def test_round_trip_is_exact_on_the_real_data(tokenizer):
    for lang in ("en", "de", "fr", "cs"):
        lines = data.read_lines(1, "val", lang) + data.read_lines(1, "train", lang)[:5000]
        decoded = tokenizer.decode(tokenizer.encode(lines))
        assert decoded == [normalize(line) for line in lines], lang


def test_special_ids_are_dropped_when_decoding(toy_tokenizer):
    tokenizer = toy_tokenizer
    ids = tokenizer.encode(["A dog runs."])[0]
    assert tokenizer.decode([[tokenizer.lang_id("en"), *ids, EOS_ID, PAD_ID, PAD_ID]]) == [
        "A dog runs."
    ]


def test_odd_inputs(toy_tokenizer):
    tokenizer = toy_tokenizer
    assert tokenizer.encode([""]) == [[]] and tokenizer.decode([[]]) == [""]
    assert tokenizer.encode(["   \t "]) == [[]]
    unseen = "日本語のテキスト 🙂 Ωμέγα"
    ids = tokenizer.encode([unseen])[0]
    assert UNK_ID not in ids  # byte fallback: nothing becomes <unk>
    assert tokenizer.decode([ids]) == [unseen]
    long_line = " ".join(["A man rides a bicycle down the street."] * 500)
    assert tokenizer.decode(tokenizer.encode([long_line])) == [long_line]
    assert tokenizer.decode(tokenizer.encode(["  two   spaces\n"])) == ["two spaces"]


def test_word_starts_mark_word_initial_pieces(toy_tokenizer):
    tokenizer = toy_tokenizer
    ids = tokenizer.encode(["Zwei Fußballspieler"])[0]
    starts = tokenizer.word_starts(ids)
    assert starts[0] and sum(starts) == 2 and len(starts) == len(ids)


def test_training_is_cached_by_settings_and_text(tmp_path):
    first = train_tokenizer(SYNTHETIC, TokenizerSettings(vocab_size=320), cache=tmp_path)
    stamp = first.model_file.stat().st_mtime_ns
    again = train_tokenizer(SYNTHETIC, TokenizerSettings(vocab_size=320), cache=tmp_path)
    assert again.model_file == first.model_file and again.model_file.stat().st_mtime_ns == stamp
    other = train_tokenizer(SYNTHETIC[:-1], TokenizerSettings(vocab_size=320), cache=tmp_path)
    assert other.model_file != first.model_file
    assert isinstance(Tokenizer(first.model_file), Tokenizer)


def test_bpe_and_bad_settings(tmp_path):
    bpe = train_tokenizer(
        SYNTHETIC, TokenizerSettings(vocab_size=320, model_type="bpe"), cache=tmp_path
    )
    assert bpe.decode(bpe.encode(SYNTHETIC[:3])) == SYNTHETIC[:3]
    with pytest.raises(ValueError, match="model_type"):
        train_tokenizer(SYNTHETIC, TokenizerSettings(model_type="wordpiece"), cache=tmp_path)
    with pytest.raises(ValueError, match="no text"):
        train_tokenizer(["", "  "], cache=tmp_path)
    with pytest.raises(ValueError, match="unknown language"):
        course_tokenizer(["en", "jp"])


def test_fingerprint_tells_vocabularies_apart(toy_tokenizer, tmp_path):
    small = train_tokenizer(SYNTHETIC, TokenizerSettings(vocab_size=320), cache=tmp_path)
    assert small.fingerprint() != toy_tokenizer.fingerprint()
    assert len(toy_tokenizer.fingerprint()) == 16


def test_too_small_vocabulary_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="SentencePiece cannot train"):
        train_tokenizer(SYNTHETIC, TokenizerSettings(vocab_size=50), cache=tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
