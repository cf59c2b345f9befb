"""Prompt-based fine-tuning (PET, Schick & Schutze 2021; LM-BFF, Gao et al. 2021): a class is
scored by how well its label word fills the slot of a template, read through the LM head that
pre-training trained. No new head: the LM head is kept, and trains with the rest.

A text x is wrapped in a template such as "{text} It was [MASK]." and class c gets one label
word v_c (" terrible", " bad", " okay", " good", " great"). With z = lm_head(h) the LM's logits:

    masked LM (bidirectional)   the template keeps its [MASK] token, at position t_mask:
                                    s_c = z[t_mask, v_c]
    causal / prefix LM          the template is cut before the slot; the label word is the next
                                token after the last one kept, at position t_last:
                                    s_c = log softmax(z[t_last])[v_c]    (over the text ids)

    P(y = c | x) = softmax_c(s_c),     L2 = -sum_(x, y) log P(y | x)

the same loss as the head swap (minigpt.finetune.classifier). log softmax only subtracts a
per-row constant, so both forms give the class probabilities that the raw logits z[t, v_c] would;
the causal scores are the LM's own next-token log-probabilities.

The label word is encoded as it would sit in the template: when the text before [MASK] ends in
a space, that space goes with the word (" great"), as GPT-2's BPE writes words. Each word must be
one token of the model's vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from minigpt.data.objectives import MASK_TOKEN
from minigpt.data.tokenizer import Tokenizer
from minigpt.model.config import GPTConfig

TEXT_FIELD = "{text}"
TEMPLATE = "{text} It was [MASK]."
LABEL_WORDS = ("terrible", "bad", "okay", "good", "great")


@dataclass(frozen=True)
class Prompt:
    """A template and its label words as token ids (what a saved classifier stores).

    Row b of a batch becomes  before ++ text_b ++ after,  and the class scores are read at
    position len - slot_from_end of it; `next_token` says which of the two scores above."""

    template: str
    label_words: tuple[str, ...]
    before: tuple[int, ...]  # ids in front of the text
    after: tuple[int, ...]  # ids behind it: up to the slot (causal), or through it and on (masked)
    label_ids: tuple[int, ...]  # v_c
    slot_from_end: int
    next_token: bool

    @property
    def n_template(self) -> int:
        return len(self.before) + len(self.after)


def make_prompt(
    tokenizer: Tokenizer, config: GPTConfig, template: str, label_words: Sequence[str]
) -> Prompt:
    """Encode `template` and `label_words` for a model of `config` (masked slot for a
    bidirectional model, next-token slot otherwise); one-line ValueErrors for what cannot work."""
    if template.count(TEXT_FIELD) != 1 or template.count(MASK_TOKEN) != 1 or (
        template.index(TEXT_FIELD) > template.index(MASK_TOKEN)
    ):  # fmt: skip
        raise ValueError(
            f"--template={template!r} must hold {TEXT_FIELD} once and {MASK_TOKEN} once after"
            f" it, e.g. {TEMPLATE!r}"
        )
    head, tail = template.split(TEXT_FIELD)
    to_slot, past_slot = tail.split(MASK_TOKEN)
    space = " " if to_slot.endswith(" ") else ""  # the word carries its space, as in GPT-2 BPE
    to_slot = to_slot.removesuffix(" ")
    label_ids = tuple(_one_token(tokenizer, space + word.strip()) for word in label_words)
    before, to_slot_ids = tokenizer.encode(head), tokenizer.encode(to_slot)
    if config.attention == "bidirectional":
        mask_id = _mask_id(tokenizer)
        after = (*to_slot_ids, mask_id, *tokenizer.encode(past_slot))
        slot_from_end, next_token = len(after) - len(to_slot_ids), False
    else:  # a causal or prefix model predicts the slot from the tokens before it
        after, slot_from_end, next_token = tuple(to_slot_ids), 1, True
    if config.block_size <= len(before) + len(after):
        raise ValueError(
            f"--template={template!r} takes {len(before) + len(after)} tokens, leaving no room"
            f" for text in block_size {config.block_size}"
        )
    return Prompt(template, tuple(label_words), tuple(before), tuple(after), label_ids,
                  slot_from_end, next_token)  # fmt: skip


def _one_token(tokenizer: Tokenizer, word: str) -> int:
    ids = tokenizer.encode(word)
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise ValueError(
            f"label word {word!r} is {len(ids)} tokens {pieces} in the {tokenizer.name}"
            " vocabulary; --label_words needs words of one token each"
        )
    return ids[0]


def _mask_id(tokenizer: Tokenizer) -> int:
    if MASK_TOKEN not in tokenizer.special_tokens:
        raise ValueError(
            f"a bidirectional base scores the template's {MASK_TOKEN} slot, but its tokenizer has"
            f" no {MASK_TOKEN} token; use a base pre-trained with --objective=mlm"
        )
    return tokenizer.special_id(MASK_TOKEN)


class PromptReadout(nn.Module):
    """Wraps right-padded texts in the template and reads the class scores s_c at the slot.
    It holds no weights: the scores come from the GPT's own LM head."""

    def __init__(self, prompt: Prompt, config: GPTConfig) -> None:
        super().__init__()
        self.prompt = prompt
        self.block_size = config.block_size
        self.n_vocab = config.n_vocab or config.vocab_size  # ids past it are padding rows
        for name in ("before", "after", "label_ids"):
            ids = torch.tensor(getattr(prompt, name), dtype=torch.long)
            self.register_buffer(name, ids, persistent=False)  # follows .to(device)

    def wrap(
        self, input_ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) texts with `lengths` real tokens -> (B, T') templated rows and their lengths.
        Texts keep their first block_size - n_template tokens, so the slot always fits."""
        B, T = input_ids.shape
        n_before, n_after = len(self.prompt.before), len(self.prompt.after)
        keep = lengths.clamp(max=self.block_size - self.prompt.n_template)  # text tokens (B,)
        new_lengths = n_before + keep + n_after
        width = int(new_lengths.max())
        out = input_ids.new_zeros(B, width)  # 0 fills the padding, which no real token sees
        out[:, :n_before] = self.before
        text = input_ids[:, : min(T, width - n_before)]  # (B, T_text)
        beyond = torch.arange(text.size(1), device=text.device) >= keep[:, None]
        out[:, n_before : n_before + text.size(1)] = text.masked_fill(beyond, 0)
        where = (n_before + keep)[:, None] + torch.arange(n_after, device=out.device)
        out.scatter_(1, where, self.after.expand(B, -1))  # (B, n_after) after each text
        return out, new_lengths

    def scores(self, lm_head: nn.Module, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, C) final-norm hidden states of templated rows -> (B, K) class scores s_c."""
        slot = lengths - self.prompt.slot_from_end  # t_mask or t_last (B,)
        z = lm_head(h[torch.arange(len(h), device=h.device), slot])  # (B, V): one position
        if self.prompt.next_token:
            z = z[:, : self.n_vocab].float().log_softmax(-1)
        return z[:, self.label_ids]  # (B, K)
