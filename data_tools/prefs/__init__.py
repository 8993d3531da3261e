"""The prefs stage: TRL-ready image preference datasets (DPO, KTO, SFT) and their Dataset Cards.

Light on import: the command line lives in :mod:`data_tools.prefs.cli`; the logic in
:mod:`~data_tools.prefs.build` (rows from reviewed decisions), :mod:`~data_tools.prefs.split`
(leak-free splits), :mod:`~data_tools.prefs.stats` (statistics and charts),
:mod:`~data_tools.prefs.card` (the Dataset Card) and :mod:`~data_tools.prefs.publish` (save under
``exports/``, push to the Hub).
"""
