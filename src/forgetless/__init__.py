"""forgetless: exemplar-free continual learning on frozen pretrained encoders, in closed form.

>>> from forgetless import ContinualClassifier
>>> ContinualClassifier(projection="hadamard", n_components=1000).get_params()["projection"]
'hadamard'
"""

from forgetless.layers import RandomProjection
from forgetless.learner import ContinualClassifier
from forgetless.persistence import ModelFileError
from forgetless.statistics import SufficientStatistics
from forgetless.teachable import TeachableModel

__version__ = "0.1.0"

__all__ = [
    "ContinualClassifier",
    "ModelFileError",
    "RandomProjection",
    "SufficientStatistics",
    "TeachableModel",
    "__version__",
]
