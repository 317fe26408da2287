"""hnswlib's saved-graph format, checked before hnswlib reads it.

hnswlib trusts its file: a neighbour id past the element count, a link count
above the layer's capacity, or an upper-layer link to a node that does not
reach that layer makes the first search read outside its buffers and kill the
process. So a saved graph is parsed here first (header, every link list on
every layer, the labels) and refused with ``ValueError`` when any of it is out
of bounds; the collection then rebuilds the graph from the store.

The layout (hnswlib 0.8, ``HierarchicalNSW::saveIndex``): a 96-byte header,
``count`` level-0 records of ``size_per_element`` bytes (a 4-byte link header
whose low 16 bits are the link count and whose third byte holds the deleted
mark, ``maxM0`` neighbour ids, the vector, the 8-byte label), then per element a
4-byte length and that many bytes of upper-layer link lists, ``4 + 4 * maxM``
bytes a layer.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["GraphFile", "check_graph_file"]

_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
#: hnswlib marks a deleted element in the third byte of its level-0 link header.
_DELETED_MARK = 0x01
#: A graph of 2^32 elements would need more levels than this only by astronomical luck.
_MAX_LEVEL = 64


@dataclass(frozen=True)
class GraphFile:
    """What a checked graph file holds: its element count, labels and deleted marks."""

    count: int
    labels: npt.NDArray[np.int64]
    deleted: npt.NDArray[np.bool_]


def _fail(why: str) -> ValueError:
    return ValueError(f"the saved graph is damaged: {why}")


def check_graph_file(path: Path, dim: int, m: int, ef_construction: int) -> GraphFile:
    """Parse and bound-check the graph file at ``path`` built with ``m`` and
    ``ef_construction`` over ``dim``-d float vectors; raise ``ValueError`` if it is not one."""
    with path.open("rb") as fh:
        size = path.stat().st_size
        if size < _HEADER.size:
            raise _fail(f"{size} bytes is shorter than its header")
        # Mapped, not read: the file can be larger than free memory. The map is left to the
        # collector, since views into it may outlive this call in a traceback.
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return _check(buf, size, dim, m, ef_construction)


def _check(buf: mmap.mmap, size: int, dim: int, m: int, ef_construction: int) -> GraphFile:
    (
        offset_level0,
        max_elements,
        count,
        per_element,
        label_offset,
        data_offset,
        max_level,
        entry,
        max_m,
        max_m0,
        m_saved,
        mult,
        ef_saved,
    ) = _HEADER.unpack_from(buf, 0)
    links0 = 4 + 4 * max_m0
    if (m_saved, max_m, max_m0, ef_saved) != (m, m, 2 * m, ef_construction):
        raise _fail("its M or ef_construction differ from the collection's")
    if (offset_level0, data_offset, label_offset, per_element) != (
        0,
        links0,
        links0 + 4 * dim,
        links0 + 4 * dim + 8,
    ):
        raise _fail(f"its record layout does not fit {dim}-d vectors")
    if not math.isclose(mult, 1.0 / math.log(m), rel_tol=1e-9):
        raise _fail("its level multiplier is not hnswlib's for this M")
    if not count <= max_elements or count >= 2**32:
        raise _fail(f"it claims {count} elements in room for {max_elements}")
    level0_end = _HEADER.size + count * per_element
    if level0_end + 4 * count > size:
        raise _fail("the file is shorter than its element count needs")
    if count == 0:
        if level0_end != size:
            raise _fail("an empty graph with trailing bytes")
        return GraphFile(0, np.empty(0, dtype=np.int64), np.empty(0, dtype=bool))
    if not 0 <= max_level <= _MAX_LEVEL or entry >= count:
        raise _fail(f"entry point {entry} at level {max_level} is out of bounds")

    records = np.frombuffer(buf, dtype=np.uint8, count=count * per_element, offset=_HEADER.size)
    records = records.reshape(count, per_element)
    header = records[:, :4].copy().view(np.uint32)[:, 0]
    degree = (header & 0xFFFF).astype(np.int64)
    if (degree > max_m0).any():
        bad = int(np.flatnonzero(degree > max_m0)[0])
        raise _fail(f"element {bad} has {degree[bad]} level-0 links, above {max_m0}")
    neighbours = records[:, 4:links0].copy().view(np.uint32)
    used = np.arange(max_m0)[None, :] < degree[:, None]
    if (neighbours[used] >= count).any():
        raise _fail("a level-0 link points past the last element")
    deleted = ((header >> 16) & _DELETED_MARK).astype(bool)
    labels = records[:, label_offset : label_offset + 8].copy().view("<u8")[:, 0]
    if (labels >= 2**63).any():
        raise _fail("a label is out of range")
    levels = _upper_levels(buf, size, level0_end, count, max_m)
    if int(levels.max()) > max_level or int(levels[entry]) != max_level:
        raise _fail("the entry point is not on the top level")
    _check_upper_links(buf, level0_end, levels, count, max_m)
    return GraphFile(count, labels.astype(np.int64), deleted)


def _upper_levels(
    buf: mmap.mmap, size: int, start: int, count: int, max_m: int
) -> npt.NDArray[np.int64]:
    """Each element's top level, read from the lengths of its upper-layer link lists."""
    per_level = 4 + 4 * max_m
    levels = np.zeros(count, dtype=np.int64)
    unpack = struct.Struct("<I").unpack_from
    offset = start
    for i in range(count):
        if offset + 4 > size:
            raise _fail("the upper-layer links end early")
        (length,) = unpack(buf, offset)
        if length % per_level or length > _MAX_LEVEL * per_level:
            raise _fail(f"element {i} has upper-layer links of {length} bytes")
        levels[i] = length // per_level
        offset += 4 + length
    if offset != size:
        raise _fail("bytes follow the last element")
    return levels


def _check_upper_links(
    buf: mmap.mmap, start: int, levels: npt.NDArray[np.int64], count: int, max_m: int
) -> None:
    """Every upper-layer link stays within its capacity and leads to a node on that layer
    (hnswlib reads the neighbour's list on the same layer without checking)."""
    width = 1 + max_m  # words a layer: the link header, then the neighbour ids
    tall = np.flatnonzero(levels > 0)
    if not len(tall):
        return
    # The file is 4-byte aligned throughout, so the upper blocks read as one word array.
    tail = np.frombuffer(buf, dtype="<u4", offset=start, count=(len(buf) - start) // 4)
    words = 1 + levels * width  # each element's length word and its layers
    first = np.concatenate(([0], np.cumsum(words)[:-1]))[tall] + 1
    per = levels[tall]
    layer = np.concatenate([np.arange(1, n + 1) for n in per.tolist()])
    heads = np.repeat(first, per) + (layer - 1) * width
    degree = (tail[heads] & 0xFFFF).astype(np.int64)
    if (degree > max_m).any():
        raise _fail(f"an upper-layer node has more links than {max_m}")
    ids = tail[heads[:, None] + 1 + np.arange(max_m)[None, :]].astype(np.int64)
    used = np.arange(max_m)[None, :] < degree[:, None]
    if (ids[used] >= count).any():
        raise _fail("an upper-layer link points past the last element")
    reach = np.where(used, levels[np.where(used, ids, 0)], np.iinfo(np.int64).max)
    if (reach < layer[:, None]).any():
        raise _fail("an upper-layer link leads to a node not on that layer")
