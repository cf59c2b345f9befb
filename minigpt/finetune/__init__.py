"""Fine-tuning: swap the LM head for a classifier and train it, whole or in part.

config.py      FinetuneConfig: every finetune.py setting
classifier.py  GPTClassifier (last-token pooling, head swap) and its checkpoint format
peft.py        head / top / full / LoRA / adapters / prefix tuning, wrapped in place
data.py        train / val / test splits of labelled text, length-grouped batches
loop.py        one loop for every method: epochs, early stopping, evaluation
metrics.py     accuracy, macro-F1, per-class precision/recall, confusion matrix
"""
