"""The rules ``container/validate_command.py`` checks command.json against, one module per part of the command.

``validate_command.py`` is the entry point (``validate_command()``, ``main()``); this package is not
installed, and the image build does not use it (only ``label.py`` runs there). Standard library only.

========================  =======================================================================
``vocabulary.py``         rule codes (``RULES``), known keys, name patterns, type lists: data only
``base.py``               ``Checker`` (collects the messages) and the checks every part shares
``command.py``            the command's own fields
``mounts.py``             mounts
``inputs.py``             command inputs and their defaults
``outputs.py``            command outputs
``wrappers.py``           wrappers and their external and derived inputs
``handlers.py``           a wrapper's output handlers
``validate.py``           ``validate_command()``: the parts in order
========================  =======================================================================

The modules import one another relatively, so the package works under whatever name it is imported
as; nothing here imports this ``__init__``.
"""
