"""Fine-tuning: swap the LM head for a classifier and train it, whole or in part.

config.py      FinetuneConfig: every finetune.py setting
run.py         one run: the base model (pre-trained here if none is given), data, loop, test
report.py      metrics.json, the printed summary and the plots of a run
predict.py     classify texts with a saved classifier (finetune.py predict)
classifier.py  GPTClassifier (head swap; last-token or mean pooling) and its checkpoint format
prompt.py      prompt readout (PET / LM-BFF): label words in a template, scored by the LM head
peft.py        head / top / full / LoRA / AdaLoRA / adapters / prefix tuning, wrapped in place
lora.py        LoRALinear: W' = W + (alpha / r) B A on slices of a Linear; merging
adalora.py     AdaLoRA: P diag(lambda) Q updates and the rank allocator the loop calls each step
data.py        train / val / test splits of labelled text, length-grouped batches
loop.py        one loop for every method: epochs, early stopping, evaluation
metrics.py     accuracy, macro-F1, per-class precision/recall, confusion matrix
plot.py        confusion-matrix and learning-curve PNGs (plot extra)
"""
