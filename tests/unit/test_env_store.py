"""The redundant environment's encoding: every torn or corrupted copy is detected."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from patchgate.agent.env_store import decode, encode
from patchgate.domain import ab_state

ENV = ab_state.fresh_env(version="1.0.0", sha256="a" * 64, size=4096)


@settings(max_examples=300, deadline=None)
@given(sequence=st.integers(0, 2**40), floor=st.integers(0, 50), bootcount=st.integers(0, 9))
def test_a_copy_reads_back_as_written(sequence: int, floor: int, bootcount: int) -> None:
    env = ab_state.BootEnv.from_dict(
        {**ENV.to_dict(), "security_floor": floor, "bootcount": bootcount}
    )
    copy = decode(1, encode(env, sequence))
    assert (copy.env, copy.sequence, copy.problem) == (env, sequence, None)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_torn_or_bit_flipped_copy_is_never_taken_for_valid(data: st.DataObject) -> None:
    blob = encode(ENV, 7)
    if data.draw(st.booleans(), label="tear"):
        damaged = blob[: data.draw(st.integers(0, len(blob) - 1), label="cut")]
    else:
        index = data.draw(st.integers(0, len(blob) - 1), label="byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        damaged = blob[:index] + bytes([blob[index] ^ (1 << bit)]) + blob[index + 1 :]
    copy = decode(0, damaged)
    # Only a flip that changes nothing (the case of a hex digit) may still read as valid.
    assert copy.env is None or (copy.env == ENV and copy.sequence == 7)
