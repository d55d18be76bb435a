"""Language-model pretraining of Nirvana (and the equal-size baselines) on an offline English corpus.

- ``python -m mrirecon.pretrain.corpus``: build the corpus and its tokenizer (:mod:`.corpus`).
- ``python -m mrirecon.pretrain fit --config backbone/pretrain.yaml``: train and export (:mod:`.cli`).
- ``python -m mrirecon.pretrain.compare RUN_DIR...``: the comparison table (:mod:`.compare`).
"""
