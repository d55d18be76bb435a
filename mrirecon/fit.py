"""The ``fit`` command: ``python -m mrirecon.fit {fit,validate,test,predict} --config codecs/base.yaml ...``
(also ``mrirecon fit ...``). The command lives in :mod:`mrirecon.training.cli`."""

from .training.cli import main

if __name__ == "__main__":
    main()
