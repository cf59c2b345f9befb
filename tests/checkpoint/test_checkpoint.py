"""Checkpoints: bit-exact round trip, no pickle, and one-line errors for broken files."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import minigpt
from minigpt.checkpoint import CheckpointError, pretrained
from tests.tiny_models import VARIANTS, tiny_gpt_config


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_save_load_round_trip_is_bit_exact(tmp_path, variant):
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(**VARIANTS[variant]))
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    back = minigpt.GPT.from_pretrained(tmp_path)
    assert back.config == model.config
    state, back_state = model.state_dict(), back.state_dict()
    assert state.keys() == back_state.keys()
    for name in state:
        assert torch.equal(state[name], back_state[name]), name
    idx = torch.randint(0, 67, (2, 32))
    assert torch.equal(model.eval()(idx).logits, back.eval()(idx).logits)
    if model.config.tie_word_embeddings:
        assert back.lm_head.weight is back.wte.weight


def test_overrides_change_runtime_fields(tmp_path):
    minigpt.GPT(tiny_gpt_config()).save_pretrained(tmp_path)
    back = minigpt.GPT.from_pretrained(tmp_path, attn_impl="math", dropout=0.2)
    assert back.config.attn_impl == "math" and back.config.dropout == 0.2


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    minigpt.GPT(tiny_gpt_config()).save_pretrained(tmp_path)
    return tmp_path


def test_missing_tensor_is_named(saved):
    state = load_file(saved / "model.safetensors")
    del state["h.1.mlp.c_fc.bias"]
    save_file(state, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing tensor 'h.1.mlp.c_fc.bias'"):
        minigpt.GPT.from_pretrained(saved)


def test_wrong_shape_is_named(saved):
    state = load_file(saved / "model.safetensors")
    state["wpe.weight"] = torch.zeros(16, 32)
    save_file(state, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"'wpe.weight' has shape \(16, 32\)"):
        minigpt.GPT.from_pretrained(saved)


def test_mismatched_config_is_named(saved):
    config = json.loads((saved / "config.json").read_text())
    config["n_embd"] = 64
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'wte.weight' has shape"):
        minigpt.GPT.from_pretrained(saved)


def test_truncated_file_is_reported(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors is truncated or corrupt"):
        minigpt.GPT.from_pretrained(saved)


def test_unknown_model_type_and_field(saved):
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(CheckpointError, match="unknown model_type 'llama'; supported: minigpt"):
        minigpt.GPT.from_pretrained(saved)
    (saved / "config.json").write_text(json.dumps({**config, "n_layers": 2}))
    with pytest.raises(CheckpointError, match="unknown field 'n_layers'"):
        minigpt.GPT.from_pretrained(saved)


def test_not_a_checkpoint_directory(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .* \(no config.json\)$"):
        minigpt.GPT.from_pretrained(tmp_path)


@pytest.mark.parametrize("path", ["/no/such/dir", "./missing", "~/missing-ckpt", "a/b/c", "out/x"])
def test_a_missing_local_path_is_named_and_never_sent_to_the_hub(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()  # "out/x": the folder exists, so x is a path inside it

    def no_hub(name):
        raise AssertionError(f"{name} was sent to the hub")

    monkeypatch.setattr(pretrained, "download_from_hub", no_hub)
    with pytest.raises(CheckpointError) as err:
        minigpt.GPT.from_pretrained(path)
    assert str(err.value) == f"no checkpoint at {path} (no config.json)"


@pytest.mark.parametrize("name", ["gpt2", "EleutherAI/gpt-neo-125M"])
def test_a_hub_name_goes_to_the_hub(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    asked = []
    monkeypatch.setattr(pretrained, "download_from_hub", lambda n: asked.append(n) or tmp_path)
    with pytest.raises(CheckpointError, match="no config.json"):  # the fake download is empty
        minigpt.GPT.from_pretrained(name)
    assert asked == [name]


def test_hub_name_offline_fails_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as err:
        minigpt.GPT.from_pretrained("no-such-org/no-such-model")
    message = str(err.value)
    assert "\n" not in message
    assert "Hugging Face hub" in message and "no-such-org/no-such-model" in message


def test_pytorch_bin_checkpoint_loads_without_pickle(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=67, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    cfg.save_pretrained(tmp_path)
    model = minigpt.GPT.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 67, (1, 32))
    with torch.no_grad():
        assert (model(idx).logits - hf(idx).logits).abs().max().item() < 1e-5


def test_tokenizer_travels_with_the_checkpoint(tmp_path):
    tok = minigpt.Tokenizer.char_from_text("to be or not to be")
    model = minigpt.GPT(tiny_gpt_config(vocab_size=64, n_vocab=tok.n_vocab))
    model.save_pretrained(tmp_path, tokenizer=tok)
    back = minigpt.load_tokenizer(tmp_path)
    assert back.to_spec() == tok.to_spec()
    assert back.decode(back.encode("not to be")) == "not to be"
    assert minigpt.load_tokenizer(tmp_path / "missing") is None
