"""Synthetic anomalies for training: the generator, its realistic shapes and the difficulty knobs.

:mod:`.anomalies` pastes anomalies into good images (:class:`~cdo_train.synth.anomalies.SynthParams`
says how), :mod:`.shapes` draws the realistic ones, and :mod:`.difficulty` turns a curriculum's
difficulty ``t`` into the parameters of the generator.
"""
