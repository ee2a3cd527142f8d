"""The two measured experiments: a tiny causal LM trained on the copy/reverse task.

- :mod:`.tasks`: the task, its answer-length buckets, batching (``collate``) and scoring.
- :mod:`.sft_training`: supervised training under several loss reductions ("arms"), notebook 10.
- :mod:`.rl_training`: RL of the same model under GRPO / DAPO / Dr. GRPO aggregation, notebook 14.
- :mod:`.rl_primer`: one prompt's group of answers from that policy, the RL primer (notebook 08b).
- :mod:`.results`, :mod:`.sft_results`, :mod:`.rl_results`: the cached runs, their statistics.
- :mod:`.sft_cli`, :mod:`.rl_cli`: ``python -m lossviz experiment`` and ``rl-experiment``.

Every loss here is built from the math layer (``lossviz.reductions``, ``lossviz.accumulation``,
``lossviz.rl``); nothing in this package defines a reduction of its own.
"""
