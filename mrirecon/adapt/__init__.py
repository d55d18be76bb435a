"""Adaptation from a scan's own k-space, without a reference image.

- :mod:`.selfsup`: split the measured lines into input and held-out sets and score a network's k-space on the
  held-out lines (the self-supervised objective; also an auxiliary training loss);
- :mod:`.tta`: per-scan test-time adaptation: small adapters fitted to that objective, weights frozen.
"""
