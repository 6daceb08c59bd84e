"""The PyTorch side of jaxreg: the seeds' models, penalties and dropout, written in torch.

One torch code base serves both ``jaxreg run --framework torch`` (``jaxreg.torch_ref.engine``)
and the parity suite (``parity_tests/``):

* :mod:`jaxreg.torch_ref.models`: torch twins of :mod:`jaxreg.models`, same class names and
  ``state_dict`` keys that :mod:`jaxreg.convert` maps 1:1 onto the Flax parameter trees;
* :mod:`jaxreg.torch_ref.penalties`: the seeds' penalty formulas, verbatim;
* :mod:`jaxreg.torch_ref.dropout`: d2l's ``dropout_layer`` and cs231n's vanilla/inverted dropout.

Importing this package imports torch; ``import jaxreg`` never does.
"""

import torch  # noqa: F401  (fail here, with torch's own message, when torch is missing)

from jaxreg.torch_ref import dropout, models, penalties

__all__ = ["dropout", "models", "penalties"]
