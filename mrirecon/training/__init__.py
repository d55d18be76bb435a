"""The training layer: one Lightning loop for every learned method.

- :mod:`.module`: :class:`~.module.ReconModule` (loss, whole-volume validation metrics, optimiser);
- :mod:`.schedule`: its learning-rate schedule (linear warm-up, then cosine; by steps or by time);
- :mod:`.callbacks`: :class:`~.callbacks.ExportCodec` (the codec of Lightning's best checkpoint, with its
  card) and :class:`~.callbacks.LineProgress` (progress lines for log files);
- :mod:`.cli`: the ``fit`` command (LightningCLI; ``python -m mrirecon.fit``).

Recipes: ``codecs/base.yaml`` plus one overlay per model (``codecs/*.yaml``).
"""
