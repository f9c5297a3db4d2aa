#!/usr/bin/env python3
"""Rewrite a systemd journal file with tiny hash tables, so it makes a small fuzz seed.

Usage: compact-journal.py IN.journal OUT.journal

systemd-journal-remote (Debian 12) writes 8 MiB files whose data hash table alone is
3.6 MiB of zeros. This keeps every object (DATA, FIELD, ENTRY, ENTRY_ARRAY) as it is,
replaces the two hash tables by 7-bucket ones (chains rebuilt from the hashes stored in
the objects), moves the objects down and fixes every offset. Format: systemd's
docs/JOURNAL_FILE_FORMAT.md (regular and compact layouts). Sealed files are refused.
"""
import struct
import sys

DATA, FIELD, ENTRY, DATA_HT, FIELD_HT, ENTRY_ARRAY, TAG = 1, 2, 3, 4, 5, 6, 7
BUCKETS = 7


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def align8(n):
    return (n + 7) & ~7


def main(src, dst):
    f = open(src, "rb").read()
    assert f[:8] == b"LPKSHHRH", "not a journal file"
    incompat = u32(f, 12)
    compact = bool(incompat & 16)
    header_size = u64(f, 88)
    tail = u64(f, 136)
    objs = []  # (old offset, type, bytes)
    off = header_size
    while True:
        typ, size = f[off], u64(f, off + 8)
        assert typ != TAG, "sealed journals are not supported"
        objs.append((off, typ, bytearray(f[off:off + size])))
        if off == tail:
            break
        off = align8(off + size)

    def table(typ):
        body = bytearray(16 + 16 * BUCKETS)
        body[0] = typ
        struct.pack_into("<Q", body, 8, len(body))
        return body

    out = []
    for old, typ, body in objs:
        if typ == DATA_HT:
            out.append((old, typ, table(DATA_HT)))
        elif typ == FIELD_HT:
            out.append((old, typ, table(FIELD_HT)))
        else:
            out.append((old, typ, body))
    new_of = {}
    pos = header_size
    for old, typ, body in out:
        new_of[old] = pos
        pos = align8(pos + len(body))
    end = pos

    def m(o):
        return new_of[o] if o else 0

    dht = fht = None
    for old, typ, body in out:
        if typ == DATA:
            for at in (32, 40, 48):  # next_field, entry, entry_array (next_hash rebuilt)
                struct.pack_into("<Q", body, at, m(u64(body, at)))
            struct.pack_into("<Q", body, 24, 0)
            if compact:
                struct.pack_into("<I", body, 64, m(u32(body, 64)))
        elif typ == FIELD:
            struct.pack_into("<Q", body, 32, m(u64(body, 32)))
            struct.pack_into("<Q", body, 24, 0)
        elif typ == ENTRY:
            step = 4 if compact else 16
            for at in range(64, len(body), step):
                if compact:
                    struct.pack_into("<I", body, at, m(u32(body, at)))
                else:
                    struct.pack_into("<Q", body, at, m(u64(body, at)))
        elif typ == ENTRY_ARRAY:
            struct.pack_into("<Q", body, 16, m(u64(body, 16)))
            step = 4 if compact else 8
            for at in range(24, len(body), step):
                fmt = "<I" if compact else "<Q"
                struct.pack_into(fmt, body, at, m(struct.unpack_from(fmt, body, at)[0]))
        elif typ == DATA_HT:
            dht = (old, body)
        elif typ == FIELD_HT:
            fht = (old, body)

    # hash chains, in file order
    by_new = {new_of[old]: body for old, typ, body in out}
    for ht, kind in ((dht, DATA), (fht, FIELD)):
        last = [0] * BUCKETS
        for old, typ, body in out:
            if typ != kind:
                continue
            b = u64(body, 16) % BUCKETS
            here = new_of[old]
            if last[b]:
                struct.pack_into("<Q", by_new[last[b]], 24, here)
            else:
                struct.pack_into("<Q", ht[1], 16 + 16 * b, here)
            struct.pack_into("<Q", ht[1], 16 + 16 * b + 8, here)
            last[b] = here

    h = bytearray(f[:header_size])
    struct.pack_into("<Q", h, 96, end - header_size)  # arena_size
    struct.pack_into("<QQ", h, 104, new_of[dht[0]] + 16, 16 * BUCKETS)
    struct.pack_into("<QQ", h, 120, new_of[fht[0]] + 16, 16 * BUCKETS)
    struct.pack_into("<Q", h, 136, new_of[tail])
    struct.pack_into("<Q", h, 176, m(u64(h, 176)))  # entry_array_offset
    if header_size >= 264:
        struct.pack_into("<I", h, 256, m(u32(h, 256)))  # tail_entry_array_offset
    if header_size >= 272:
        struct.pack_into("<Q", h, 264, m(u64(h, 264)))  # tail_entry_offset
    img = bytearray(end)
    img[:header_size] = h
    for old, typ, body in out:
        img[new_of[old]:new_of[old] + len(body)] = body
    open(dst, "wb").write(img)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
