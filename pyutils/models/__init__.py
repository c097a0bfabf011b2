"""Speaker-embedding networks, built by name from a config (``build_model``)."""
from pyutils.models.tdnn import XVectorTDNN

MODELS = {"xvector": XVectorTDNN}


def build_model(name: str, **kwargs):
    """Instantiate the network ``name`` with keyword arguments from the YAML config."""
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
