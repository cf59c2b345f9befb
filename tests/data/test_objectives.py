"""Pre-training objectives as data transforms: statistics, layouts and where the loss falls."""

import pytest
import torch

from minigpt.data.bins import check_tokenizer
from minigpt.data.objectives import (
    IGNORE_INDEX,
    MASK_TOKEN,
    SENTINELS,
    corrupt_spans,
    make_objective,
    masked_lm,
    prefix_lm,
    random_spans_noise_mask,
    span_corruption,
    special_tokens,
)
from minigpt.data.tokenizer import Tokenizer

N_VOCAB, MASK, PAD = 256, 300, 0
SENTINEL_IDS = list(range(1000, 1100))


def _windows(B=64, T=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, N_VOCAB, (B, T + 1), generator=g), g


def test_causal_objective_is_next_token_prediction():
    window, _ = _windows(2, 8)
    batch = make_objective("causal", Tokenizer.from_name("bytes"))(window, None)
    assert torch.equal(batch.inputs, window[:, :-1]) and torch.equal(batch.targets, window[:, 1:])
    assert batch.prefix_len is None


def test_mlm_picks_15_percent_and_replaces_80_10_10():
    window, g = _windows()
    picked = random = kept = masked = total = 0
    for _ in range(20):
        batch = masked_lm(window, g, mask_id=MASK, n_vocab=N_VOCAB)
        sel = batch.targets != IGNORE_INDEX
        tokens = window[:, :-1]
        assert torch.equal(batch.targets[sel], tokens[sel])  # the loss asks for the original
        assert torch.equal(batch.inputs[~sel], tokens[~sel])  # unpicked positions untouched
        total += tokens.numel()
        picked += int(sel.sum())
        masked += int((batch.inputs[sel] == MASK).sum())
        kept += int((batch.inputs[sel] == tokens[sel]).sum())
    random = picked - masked - kept
    assert picked / total == pytest.approx(round(0.15 * 128) / 128)  # exactly 19 of 128 per row
    assert masked / picked == pytest.approx(0.8, abs=0.015)
    # a random replacement can draw the original token (1 in 255), which then counts as kept
    assert random / picked == pytest.approx(0.1 * 254 / 255, abs=0.01)
    assert kept / picked == pytest.approx(0.1 + 0.1 / 255, abs=0.01)


def test_mlm_random_replacements_are_real_text_ids():
    window, g = _windows()
    batch = masked_lm(window, g, mask_id=MASK, n_vocab=N_VOCAB)
    assert int(batch.inputs[batch.inputs != MASK].max()) < N_VOCAB


def test_prefix_lm_splits_uniformly_and_takes_loss_on_the_continuation_only():
    window, g = _windows(B=4000, T=16)
    batch = prefix_lm(window, g)
    P = batch.prefix_len
    assert int(P.min()) == 1 and int(P.max()) == 15
    assert P.float().mean().item() == pytest.approx(8.0, abs=0.15)
    t = torch.arange(16)
    has_loss = batch.targets != IGNORE_INDEX
    assert torch.equal(has_loss, t[None, :] >= P[:, None] - 1)
    assert torch.equal(batch.targets[has_loss], window[:, 1:][has_loss])


def test_sentinel_layout_matches_the_t5_paper_example():
    words = ["Thank", "you", "for", "inviting", "me", "to", "your", "party", "last", "week", "."]
    ids = {w: i for i, w in enumerate(words)}
    X, Y, Z = SENTINEL_IDS[:3]
    noise = [w in ("for", "inviting", "last") for w in words]
    source, target = corrupt_spans([ids[w] for w in words], noise, SENTINEL_IDS)
    thank_you, me_to_your_party = [0, 1], [4, 5, 6, 7]
    assert source == [*thank_you, X, *me_to_your_party, Y, ids["week"], ids["."]]
    assert target == [X, ids["for"], ids["inviting"], Y, ids["last"], Z]


def test_span_noise_has_density_15_percent_and_mean_span_length_3():
    g = torch.Generator().manual_seed(0)
    n_noise = n_spans = 0
    for _ in range(300):
        mask = random_spans_noise_mask(200, 0.15, 3.0, g)
        n_noise += int(mask.sum())
        n_spans += int((mask[1:] & ~mask[:-1]).sum() + mask[0])
        assert not mask[0]  # as in T5, a row starts with kept tokens
    assert n_noise / (300 * 200) == 0.15  # round(0.15 * 200) = 30 every time
    assert n_noise / n_spans == 3.0  # round(30 / 3) = 10 spans of 30 tokens


def test_span_lengths_vary_with_the_generator():
    g = torch.Generator().manual_seed(1)
    masks = {tuple(random_spans_noise_mask(60, 0.15, 3.0, g).tolist()) for _ in range(20)}
    assert len(masks) > 10


def test_span_corruption_takes_loss_on_the_target_only_and_keeps_every_token():
    window, g = _windows(B=8, T=64)
    batch = span_corruption(window, g, SENTINEL_IDS, PAD)
    P = int(batch.prefix_len[0])
    row = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1)  # undo the shift (no padding)
    for b in range(8):
        has_loss = (batch.targets[b] != IGNORE_INDEX).nonzero().flatten()
        assert int(has_loss[0]) == P - 1  # the last input token predicts the first sentinel
        target = batch.targets[b, has_loss].tolist()
        assert target[0] == SENTINEL_IDS[0] and target[-1] in SENTINEL_IDS
        source = row[b, :P].tolist()
        # putting the spans back where their sentinels are restores the window's first tokens
        spans, current = {}, None
        for tok in target:
            current = tok if tok in SENTINEL_IDS else current
            spans.setdefault(current, []).extend([] if tok in SENTINEL_IDS else [tok])
        restored = [t for tok in source for t in spans.get(tok, [tok])]
        assert restored == window[b, : len(restored)].tolist()


def test_special_tokens_use_padding_slots_then_extend_and_round_trip(tmp_path):
    tok = Tokenizer.from_name("gpt2")
    assert tok.padded_vocab_size() == 50304
    tok.add_special_tokens(special_tokens("mlm"))
    assert tok.special_id(MASK_TOKEN) == 50257 and tok.padded_vocab_size() == 50304
    tok.add_special_tokens(special_tokens("span"))
    assert tok.special_id(SENTINELS[99]) == 50357 and tok.padded_vocab_size() == 50368
    loaded = Tokenizer.load(tok.save(tmp_path))
    assert loaded.special_tokens == tok.special_tokens
    assert loaded.special_id(SENTINELS[0]) == 50258
    assert 50257 not in tok.encode("[MASK] <extra_id_0>")


def test_data_tokenized_without_special_tokens_still_matches():
    plain, extended = Tokenizer.from_name("bytes"), Tokenizer.from_name("bytes")
    extended.add_special_tokens([MASK_TOKEN])
    check_tokenizer({"tokenizer": plain.to_spec()}, extended)


def test_unknown_objective_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown objective 'bert': choose one of causal"):
        special_tokens("bert")


def test_an_objective_without_its_special_tokens_is_a_clear_error():
    with pytest.raises(ValueError, match=r"no special token '\[MASK\]'"):
        make_objective("mlm", Tokenizer.from_name("bytes"))
