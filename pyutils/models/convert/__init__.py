"""Importers of other toolkits' pretrained speaker models into this toolkit's ``final.pt``.

One module per source (``resemblyzer``, ``wespeaker``, ``threedspeaker``, ``speechbrain``, and
``pyutils.models.ssl.hf_convert`` for Hugging Face); each ``convert(SRC)`` returns (the network,
in eval mode; the toolkit config; the source files read).  ``pyutils.cli.import_model`` is the command.
"""
