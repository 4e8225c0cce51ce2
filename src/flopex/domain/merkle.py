"""The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2), written by hand.

Hashes: a leaf is ``SHA-256(0x00 || data)``, an interior node ``SHA-256(0x01 || left || right)``,
the empty tree ``SHA-256("")``. The tree over ``n`` leaves splits at ``k``, the largest power of two
below ``n`` (§2.1.1).

Storage is the caller's, through :class:`NodeReader`: the hash of every *complete* subtree, keyed
by ``(level, index)`` (the subtree covers leaves ``[index * 2**level, (index + 1) * 2**level)``).
Appending a leaf writes its hash and the complete subtrees it closes (amortised two writes);
roots and proofs read O(log n) stored hashes and never rehash the leaves.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows the algorithms of
§2.1.3.2 and §2.1.4.2 and trusts nothing but the hashes it is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of a leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeReader(Protocol):
    """Reads the stored hash of a complete subtree."""

    def __call__(self, level: int, index: int) -> bytes: ...


def nodes_closed_by_append(
    index: int, leaf: bytes, read: Callable[[int, int], bytes]
) -> list[tuple[int, int, bytes]]:
    """The ``(level, index, hash)`` rows to store when leaf number ``index`` is appended: the leaf,
    then each complete subtree it closes (while the node is a right child)."""
    rows = [(0, index, leaf)]
    level, i, h = 0, index, leaf
    while i & 1:
        h = node_hash(read(level, i - 1), h)
        level, i = level + 1, i >> 1
        rows.append((level, i, h))
    return rows


def subtree_hash(read: NodeReader, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``, where ``start`` is aligned to the largest power of two
    at most ``end - start`` (always so for the ranges of §2.1: roots and proof siblings)."""
    size = end - start
    if size <= 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0:  # complete: stored
        level = size.bit_length() - 1
        return read(level, start >> level)
    k = split_point(size)
    return node_hash(subtree_hash(read, start, start + k), subtree_hash(read, start + k, end))


def root(read: NodeReader, size: int) -> bytes:
    """The root hash of the tree of the first ``size`` leaves."""
    return subtree_hash(read, 0, size)


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), bottom-up."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(subtree_hash(read, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(read, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(read: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size])."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, complete = 0, new_size, True
    m = old_size
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(read, start, end))
            break
        k = split_point(n)
        if m <= k:
            proof.append(subtree_hash(read, start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(read, start, start + k))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: whether ``proof`` shows leaf hash ``leaf`` at ``index`` under the root."""
    if not 0 <= index < size or any(len(p) != HASH_BYTES for p in proof):
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """RFC 9162 §2.1.4.2: whether ``proof`` shows the tree of ``old_root`` is a prefix of the
    tree of ``new_root``."""
    if not 0 <= old_size <= new_size or any(len(p) != HASH_BYTES for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first hash
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class MemoryTree:
    """The tree over an in-memory node map: for tests, audits and the naive-baseline benchmark."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def read(self, level: int, index: int) -> bytes:
        """A stored complete-subtree hash."""
        return self.nodes[(level, index)]

    def append(self, data: bytes) -> int:
        """Append a leaf's data; returns its index."""
        index = self.size
        for level, i, h in nodes_closed_by_append(index, leaf_hash(data), self.read):
            self.nodes[(level, i)] = h
        self.size += 1
        return index

    def root(self, size: int | None = None) -> bytes:
        """The root at ``size`` (default: now)."""
        return root(self.read, self.size if size is None else size)
