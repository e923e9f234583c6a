"Property tests of the seed lifecycle state machine."
from hypothesis import given, strategies as st
import pytest
from esper.contracts.stages import (SeedStage, VALID_TRANSITIONS, check_transition, InvalidTransitionError,
                                    is_valid_transition, is_terminal_stage, is_active_stage)
from esper.contracts.actions import action_mask, decode_action, encode_action, n_actions, ActionOp

stages = st.sampled_from(list(SeedStage))

@given(st.lists(stages, max_size=60))
def test_random_requests_only_take_valid_transitions(requests):
    "Drive a slot with random target stages: accepted moves are edges of the table, refused ones raise."
    cur, visited = SeedStage.DORMANT, [SeedStage.DORMANT]
    for dst in requests:
        if dst in VALID_TRANSITIONS[cur]:
            cur = check_transition(cur, dst); visited.append(cur)
        else:
            with pytest.raises(InvalidTransitionError) as e: check_transition(cur, dst, slot=0)
            assert cur.name in str(e.value) and dst.name in str(e.value)
    for a, b in zip(visited, visited[1:]): assert is_valid_transition(a, b)

@given(stages, stages)
def test_invalid_transition_message_names_both_stages(a, b):
    if is_valid_transition(a, b): return
    msg = str(InvalidTransitionError(a, b, slot=2))
    assert f"from {a.name} to {b.name}" in msg and msg.startswith('slot 2:')

def test_every_non_terminal_stage_reaches_dormant_or_fossilized():
    for s in SeedStage:
        seen, todo = set(), [s]
        while todo:
            x = todo.pop(); seen.add(x); todo += [y for y in VALID_TRANSITIONS[x] if y not in seen]
        assert SeedStage.FOSSILIZED in seen or SeedStage.DORMANT in seen or is_terminal_stage(s)

@given(st.lists(stages, min_size=1, max_size=4))
def test_mask_matches_decoded_actions(slot_stages):
    S, mask = len(slot_stages), action_mask(slot_stages)
    assert len(mask) == n_actions(S)
    for i, ok in enumerate(mask):
        a = decode_action(i, S)
        assert encode_action(a.op, a.slot, a.blueprint, n_slots=S) == i
        if a.op == ActionOp.WAIT: assert ok
        elif a.op == ActionOp.GERMINATE: assert ok == (slot_stages[a.slot] == SeedStage.DORMANT)
        else: assert ok == is_active_stage(slot_stages[a.slot])
