"""Participant level: the nipype workflow of one session and the CNN inference on it.

:mod:`~bids_app.participant.options` resolves a session's settings;
:mod:`~bids_app.participant.workflow` composes the sub-workflow factories
(:mod:`~bids_app.participant.anatomical`, :mod:`~bids_app.participant.registration`,
:mod:`~bids_app.participant.coregistration`, :mod:`~bids_app.participant.cnn_input`,
:mod:`~bids_app.participant.features`, :mod:`~bids_app.participant.qc`) around the thin
interfaces of :mod:`~bids_app.participant.interfaces`; :mod:`~bids_app.participant.run` runs
the sessions and :mod:`~bids_app.participant.outputs` writes their results through the
derivatives writer.
"""
