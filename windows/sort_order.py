"""Stable orders of integer columns, computed with one sort of packed numbers where they fit.

``np.lexsort`` and a stable ``np.argsort`` sort index arrays by merging (one
pass per column for ``lexsort``); on this engine's batches (thousands of rows)
that took several percent of a job's time. When the columns' value ranges and
the row positions fit together in 63 bits, each row becomes one number: its
columns, each less its minimum, side by side, most significant first, then its
position. Sorting those numbers gives the rows in the same order ``lexsort``
would, ties in their original order; the positions are the low bits. Their
width is known, so a radix sort over just those bits sorts them
(``radix_sort.sort_packed``): 5-9x faster than ``lexsort`` from 5,000 rows on
(three columns), and 1.5-8x faster than ``np.sort`` of the same numbers. Columns
whose values fit in 16 bits together (chunk numbers, key ids of a job with
fewer than 65,536 keys) are packed without the positions into 8 or 16 bits,
which numpy's stable ``argsort`` sorts by radix. Columns whose ranges do not
fit in one number are packed into several words, sorted word by word (least
significant first, each word with the positions) when each word fits beside the
positions, else by ``np.lexsort`` of the words. Short columns, and a column
wider than a word, take ``np.lexsort``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from windows.events import Int64Array
from windows.radix_sort import sort_packed

#: Fewer rows than this take ``np.lexsort``: packing costs a dozen array operations, whatever the length.
PACKED_FROM_ROWS = 2048


def lex_order(columns: Sequence[np.ndarray]) -> Int64Array:
    """The stable order of rows by signed integer (or bool) ``columns``, the last column first: what
    ``np.lexsort(columns)`` gives (other columns are handed to it)."""
    n = int(columns[0].shape[0])
    if n < PACKED_FROM_ROWS or any(column.dtype.kind not in "bi" for column in columns):
        return np.lexsort(columns).astype(np.int64, copy=False)
    position_bits = (n - 1).bit_length()
    used = position_bits
    parts: list[tuple[np.ndarray, int, int]] = []  # column, its minimum, its bits; most significant first
    for column in reversed(columns):
        low, high = int(column.min()), int(column.max())
        parts.append((column, low, (high - low).bit_length()))
    used += sum(bits for _, _, bits in parts)
    if used > 63:  # several words, each sorted as packed numbers when it fits beside the positions
        return _sort_by_words(parts, len(columns), position_bits)
    packed = _packed(parts, n)
    if used - position_bits <= 16:  # the columns alone fit in 16 bits: numpy sorts those by radix, stably
        narrow = np.uint8 if used - position_bits <= 8 else np.uint16
        return np.argsort(packed.astype(narrow), kind="stable").astype(np.int64, copy=False)
    packed <<= position_bits
    packed |= np.arange(n, dtype=np.int64)
    sort_packed(packed, used)
    packed &= (1 << position_bits) - 1
    return packed


def _packed(parts: Sequence[tuple[np.ndarray, int, int]], n: int) -> Int64Array:
    """Columns (each with its minimum and bits, most significant first) side by side in one number per row."""
    packed = np.zeros(n, dtype=np.int64)
    for column, low, bits in parts:
        if bits:
            packed <<= bits
            packed |= column.astype(np.int64, copy=False) - low
    return packed


def _sort_by_words(parts: list[tuple[np.ndarray, int, int]], columns: int, position_bits: int) -> Int64Array:
    """The stable order of rows by columns (each with its minimum and bits, most significant first) whose
    ranges do not fit in one number with the row positions.

    The columns are packed greedily, most significant first, into words. When every word fits beside the
    positions, the rows are sorted word by word, least significant first, each a plain sort of the word (in
    the order so far) with the positions in the low bits: sorting by a word keeps the order so far among its
    ties, as a stable sort would, so the last sort gives ``lexsort``'s order. Otherwise ``np.lexsort`` sorts
    the words (fewer merge passes than columns) or, for a column wider than a word, the columns."""
    n = int(parts[0][0].shape[0])
    words = _words(parts, 63 - position_bits)
    if words is not None:
        mask = (1 << position_bits) - 1
        positions = np.arange(n, dtype=np.int64)
        order: Int64Array | None = None
        for word in reversed(words):
            packed = _packed(word, n) if order is None else _packed(word, n)[order]
            packed <<= position_bits
            packed |= positions
            sort_packed(packed, position_bits + sum(bits for _, _, bits in word))
            packed &= mask
            order = packed if order is None else order[packed]
        assert order is not None
        return order
    words = _words(parts, 63)
    if words is None or len(words) == columns:
        return np.lexsort([column for column, _, _ in reversed(parts)]).astype(np.int64, copy=False)
    return np.lexsort([_packed(word, n) for word in reversed(words)]).astype(np.int64, copy=False)


def _words(parts: list[tuple[np.ndarray, int, int]], bits: int) -> list[list[tuple[np.ndarray, int, int]]] | None:
    """The columns packed greedily, most significant first, into words of ``bits`` bits (None: a column is
    wider than a word)."""
    words: list[list[tuple[np.ndarray, int, int]]] = [[]]
    used = 0
    for part in parts:
        if part[2] > bits:
            return None
        if used + part[2] > bits:
            words.append([])
            used = 0
        words[-1].append(part)
        used += part[2]
    return words


def stable_order(column: np.ndarray) -> Int64Array:
    """``np.argsort(column, kind="stable")`` of an integer column."""
    return lex_order((column,))


def first_of_each(column: np.ndarray) -> tuple[np.ndarray, Int64Array]:
    """The distinct values of an integer column, ascending, and the position of each one's first row:
    ``np.unique(column, return_index=True)``, whose stable sort is a merge sort."""
    if column.shape[0] < PACKED_FROM_ROWS:
        values, first = np.unique(column, return_index=True)
        return values, first.astype(np.int64, copy=False)
    order = stable_order(column)
    ordered = column[order]
    starts = np.ones(ordered.shape[0], dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    return ordered[starts], order[starts]
