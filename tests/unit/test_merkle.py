"""RFC 9162 Merkle tree: reference vectors from Certificate Transparency, then properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flopex.domain.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# The leaf inputs of the Certificate Transparency reference tests (RFC 6962 / RFC 9162 trees).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {  # (leaf index, tree size) -> path
    (0, 1): [],
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
CT_CONSISTENCY = {  # (old size, new size) -> proof
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


def _tree(leaves: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for data in leaves:
        tree.append(data)
    return tree


def _naive_root(leaves: list[bytes]) -> bytes:
    """MTH straight from the definition (§2.1.1), recomputed over every leaf."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_naive_root(leaves[:k]), _naive_root(leaves[k:]))


def _shape(index: int, size: int) -> list[bool]:
    """The directions of PATH(index, D[0:size]): one entry per proof hash."""
    out, start, end = [], 0, size
    while end - start > 1:
        k = 1 << ((end - start - 1).bit_length() - 1)
        out.append(index < start + k)
        start, end = (start, start + k) if index < start + k else (start + k, end)
    return out


def _consistency_len(tree: MemoryTree, old: int, new: int) -> list[bytes]:
    """A consistency proof of the right length for sizes the tree may not reach."""
    big = tree if new <= tree.size else _tree([b"%d" % i for i in range(new)])
    return consistency_proof(big.read, old, new)


def test_roots_match_the_reference_vectors_at_every_size() -> None:
    tree = MemoryTree()
    assert tree.root().hex() == CT_ROOTS[0]
    for size, data in enumerate(CT_LEAVES, start=1):
        tree.append(data)
        assert tree.root().hex() == CT_ROOTS[size]
    for size in range(9):  # older roots stay readable from the same stored nodes
        assert tree.root(size).hex() == CT_ROOTS[size]


def test_inclusion_proofs_match_the_reference_vectors() -> None:
    tree = _tree(CT_LEAVES)
    for (index, size), want in CT_INCLUSION.items():
        got = inclusion_proof(tree.read, index, size)
        assert [h.hex() for h in got] == want, (index, size)
        root = bytes.fromhex(CT_ROOTS[size])
        assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, got, root)


def test_consistency_proofs_match_the_reference_vectors() -> None:
    tree = _tree(CT_LEAVES)
    for (old, new), want in CT_CONSISTENCY.items():
        got = consistency_proof(tree.read, old, new)
        assert [h.hex() for h in got] == want, (old, new)
        old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
        assert verify_consistency(old, new, got, old_root, new_root)


def test_appends_store_each_complete_subtree_once() -> None:
    tree = _tree([bytes([i]) for i in range(8)])
    assert len(tree.nodes) == 8 + 4 + 2 + 1


leaves_strategy = st.lists(st.binary(max_size=8), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(leaves=leaves_strategy)
def test_the_stored_tree_agrees_with_the_definition(leaves: list[bytes]) -> None:
    tree = _tree(leaves)
    for size in range(len(leaves) + 1):
        assert tree.root(size) == _naive_root(leaves[:size])


@settings(max_examples=60, deadline=None)
@given(leaves=leaves_strategy, data=st.data())
def test_every_inclusion_proof_verifies_and_any_change_breaks_it(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = _tree(leaves)
    size = data.draw(st.integers(1, len(leaves)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root, leaf = tree.root(size), leaf_hash(leaves[index])
    proof = inclusion_proof(tree.read, index, size)
    assert verify_inclusion(leaf, index, size, proof, root)
    assert not verify_inclusion(leaf_hash(leaves[index] + b"x"), index, size, proof, root)
    # A claimed size whose proof has another length cannot pass. (Sizes with the same proof
    # shape are told apart by the root, which a signed checkpoint binds to its size.)
    for other in (size - 1, size + 1, 2 * size):
        if other > index and len(_shape(index, other)) != len(proof):
            assert not verify_inclusion(leaf, index, other, proof, root)
    for i in range(len(proof)):
        bent = [*proof]
        bent[i] = bytes([bent[i][0] ^ 1]) + bent[i][1:]
        assert not verify_inclusion(leaf, index, size, bent, root)
    if proof:
        assert not verify_inclusion(leaf, index, size, proof[:-1], root)
    assert not verify_inclusion(leaf, index, size, [*proof, root], root)


@settings(max_examples=60, deadline=None)
@given(leaves=leaves_strategy, data=st.data())
def test_every_consistency_proof_verifies_and_any_change_breaks_it(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = _tree(leaves)
    new = data.draw(st.integers(1, len(leaves)), label="new")
    old = data.draw(st.integers(1, new), label="old")
    old_root, new_root = tree.root(old), tree.root(new)
    proof = consistency_proof(tree.read, old, new)
    assert verify_consistency(old, new, proof, old_root, new_root)
    for i in range(len(proof)):
        bent = [*proof]
        bent[i] = bytes([bent[i][0] ^ 1]) + bent[i][1:]
        assert not verify_consistency(old, new, bent, old_root, new_root)
    if old < new:
        forked = bytes([old_root[0] ^ 1]) + old_root[1:]
        assert not verify_consistency(old, new, proof, forked, new_root)
        assert not verify_consistency(old, new, proof, old_root, forked)
        for o, n in ((old, new + 1), (old - 1, new), (old, 2 * new)):
            if 0 < o < n and len(_consistency_len(tree, o, n)) != len(proof):
                assert not verify_consistency(o, n, proof, old_root, new_root)


@settings(max_examples=40, deadline=None)
@given(leaves=st.lists(st.binary(max_size=8), min_size=2, max_size=30), data=st.data())
def test_a_rewritten_history_is_not_consistent(leaves: list[bytes], data: st.DataObject) -> None:
    old = data.draw(st.integers(1, len(leaves) - 1), label="old")
    changed = data.draw(st.integers(0, old - 1), label="changed")
    honest = _tree(leaves)
    rewritten = _tree([*leaves[:changed], leaves[changed] + b"!", *leaves[changed + 1 :]])
    proof = consistency_proof(rewritten.read, old, len(leaves))
    assert not verify_consistency(old, len(leaves), proof, honest.root(old), rewritten.root())
