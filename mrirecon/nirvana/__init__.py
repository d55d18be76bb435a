"""The Nirvana language backbone (arXiv 2510.26083), re-implemented in plain PyTorch."""

from .config import TRIGGER_MODES, NirvanaConfig
from .model import NirvanaCache, NirvanaForCausalLM, NirvanaModel, NirvanaOutput, freeze
from .ops import fla_available, gated_delta_rule, gated_delta_rule_chunked, gated_delta_rule_recurrent
from .trigger import TriggerBank, TriggerCoefficients

__all__ = [
    "TRIGGER_MODES",
    "NirvanaCache",
    "NirvanaConfig",
    "NirvanaForCausalLM",
    "NirvanaModel",
    "NirvanaOutput",
    "TriggerBank",
    "TriggerCoefficients",
    "fla_available",
    "freeze",
    "gated_delta_rule",
    "gated_delta_rule_chunked",
    "gated_delta_rule_recurrent",
]
