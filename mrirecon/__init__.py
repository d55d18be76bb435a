"""mrirecon: MRI reconstruction with trainable codecs around a frozen Nirvana backbone."""

__version__ = "0.1.0"
