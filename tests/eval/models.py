"""Small models for the eval tests: random ones, and one whose log-probs are known by hand."""

import math

import torch

import minigpt


def random_model(vocab_size: int, block_size: int = 32, seed: int = 0, **overrides) -> minigpt.GPT:
    """A random one-block GPT in eval mode (dropout off) whose vocabulary is `vocab_size` ids."""
    torch.manual_seed(seed)
    config = minigpt.GPTConfig(
        vocab_size=vocab_size, n_vocab=vocab_size, block_size=block_size,
        n_layer=1, n_head=2, n_embd=16, **overrides,
    )  # fmt: skip
    return minigpt.GPT(config).eval()


def unigram_model(probs: dict[int, float], vocab_size: int = 256) -> minigpt.GPT:
    """A GPT whose next-token distribution is `probs` at every position, whatever the context:
    the LM head's weight is zero and its bias is log p (the ids not named share the rest)."""
    model = random_model(vocab_size, tie_word_embeddings=False, lm_head_bias=True)
    rest = (1 - sum(probs.values())) / (vocab_size - len(probs))
    logp = torch.full((vocab_size,), math.log(rest))
    for token, p in probs.items():
        logp[token] = math.log(p)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.copy_(logp)
    return model


def full_pass_logprobs(model: minigpt.GPT, ids: list[int]) -> torch.Tensor:
    """log p(ids[i] | ids[:i]) for i >= 1 from one forward pass over the whole sequence."""
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]])).logits[0].double()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:]).unsqueeze(-1))[:, 0]
