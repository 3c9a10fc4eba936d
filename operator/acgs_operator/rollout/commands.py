"""acgs.io/promote|abort|undo|retry: annotations a person sets instead of editing the Git-owned spec."""

from __future__ import annotations

from .. import conditions as cond
from ..events import NORMAL, WARNING
from .model import Command, Decision, Observation, Situation
from .transitions import clear_attempt, hold, rollback


def apply_commands(obs: Observation, d: Decision, sit: Situation) -> None:
    st = d.state
    held = st.held_back
    if held and held.generation is not None and obs.generation is not None and obs.generation > held.generation:
        # The spec changed (e.g. the gates, in Git) since the version was held back: judge it anew.
        d.event(NORMAL, cond.SPEC_CHANGED,
                f"retrying {held.model_version} under the new spec (was held back: {held.reason})")
        st.held_back, st.pinned_model_version = None, None
    if Command.RETRY in obs.commands:
        if st.held_back:
            d.event(NORMAL, cond.RETRY, f"retrying {st.held_back.model_version} (was held back: {st.held_back.reason})")
        st.held_back, st.pinned_model_version = None, None
    if Command.ABORT in obs.commands:
        if st.target:
            hold(obs, d, st.target, cond.ABORTED, "aborted by acgs.io/abort", action=cond.ABORTED)
            clear_attempt(st)
        elif not st.post_checks_done:
            rollback(obs, d, sit, cond.ABORTED, "aborted by acgs.io/abort during post-promotion checks")
        else:
            d.event(NORMAL, cond.NOTHING_TO_ABORT, "acgs.io/abort: no rollout in progress")
    if Command.UNDO in obs.commands:
        previous, active = st.previous_model_version, d.active_model_version
        if not previous or not active or previous == active or previous not in obs.known:
            d.event(NORMAL, cond.NOTHING_TO_UNDO, "acgs.io/undo: no earlier ModelVersion to return to")
        elif st.held_back and st.held_back.model_version == previous:
            d.event(WARNING, cond.NOTHING_TO_UNDO, f"acgs.io/undo: {previous} is held back "
                    f"({st.held_back.reason}); use acgs.io/retry")
        else:
            clear_attempt(st)
            hold(obs, d, active, cond.UNDONE, f"undone by acgs.io/undo; serving {previous} instead",
                  action=cond.UNDONE)
            st.pinned_model_version = previous
            st.promote_approved = previous
    if Command.PROMOTE in obs.commands:
        if st.target:
            st.promote_approved = st.target
            d.event(NORMAL, cond.PROMOTION_APPROVED,
                    f"acgs.io/promote: {st.target} will be promoted once its checks pass")
        else:
            d.event(NORMAL, cond.NOTHING_TO_PROMOTE, "acgs.io/promote: no preview waiting"
                    + (f" ({st.held_back.model_version} is held back: use acgs.io/retry)" if st.held_back else ""))
