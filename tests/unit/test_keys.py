"""API keys: shape, checksum, randomness, and storage as a hash only."""

from __future__ import annotations

from earshot.keys import PREFIX, generate_key, hash_key, is_well_formed, key_hint


def test_generated_keys_are_well_formed_and_unique() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(key.startswith(PREFIX) and is_well_formed(key) for key in keys)


def test_a_typo_fails_the_checksum() -> None:
    key = generate_key()
    position = len(PREFIX) + 5
    typo = key[:position] + ("A" if key[position] != "A" else "B") + key[position + 1 :]
    assert not is_well_formed(typo)
    assert not is_well_formed(key[:-1])
    assert not is_well_formed(key + "x")
    assert not is_well_formed("sk-" + key[len(PREFIX) :])


def test_only_a_hash_and_a_hint_are_derived_for_storage() -> None:
    key = generate_key()
    assert hash_key(key) != key and len(hash_key(key)) == 64
    assert key_hint(key).endswith(key[-4:]) and key[len(PREFIX) : -4] not in key_hint(key)
