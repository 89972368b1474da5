#!/usr/bin/env python3
"""Helpers for test/integration/run.sh (stdlib only).

An independent reading of the partclone 0002 header (FORMATS.md 1.2) so the
tests do not have to trust imgbk for offsets and expected values.

  pcimg.py gen DIR                 deterministic source tree (seeded PRNG, fixed mtimes)
  pcimg.py randfile FILE SIZE SEED random bytes
  pcimg.py hdr IMG                 shell assignments: DEVSIZE TOTAL BS USED68 USED76 POP
                                   CSMODE CS BPC RESEED DATASTART NGROUPS FSNAME
  pcimg.py dataoff IMG RANK        byte offset of the first byte of used block RANK
  pcimg.py csumoff IMG GROUP       byte offset of the stored checksum after group GROUP
  pcimg.py blockof IMG RANK        device block number of the used block of rank RANK
  pcimg.py flip FILE OFFSET [MASK] xor one byte (default mask 0x01)
  pcimg.py zstdblock FILE          offset of the 2nd zstd block header of the first frame
  pcimg.py breakzstd FILE          set that block's type to 3 (reserved) -> zstd must fail there
  pcimg.py checkjson IMG           read `imgbk info --json` from stdin, compare with the header
  pcimg.py jsonok                  read `imgbk verify --json` from stdin, print its "ok"
"""
import json
import os
import random
import struct
import sys

FIXED_TIME = 1700000000


def gen(root):
    r = random.Random(20240601)

    def w(p, data):
        p = os.path.join(root, p)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, 'wb') as f:
            f.write(data)

    # incompressible
    w('random/r1.bin', r.randbytes(3 * 1024 * 1024))
    w('random/r2.bin', r.randbytes(700 * 1024 + 123))
    # compressible text
    w('text/lorem.txt', b''.join(
        b'line %06d: the quick brown fox jumps over the lazy dog %d\n' % (i, i * 7919 % 10007)
        for i in range(50000)))
    # zero runs
    w('zeros/z1m.bin', bytes(1024 * 1024))
    w('zeros/mixed.bin', r.randbytes(8192) + bytes(65536) + r.randbytes(5000) + bytes(12345))
    # nested dirs, many small files
    for i in range(40):
        w('deep/a/b/c/d%d/f%02d.dat' % (i % 5, i), r.randbytes(r.randrange(1, 20000)))
    for i in range(20):
        w('deep/t%02d.txt' % i, (b'file %d\n' % i) * r.randrange(1, 300))
    w('empty', b'')
    # fixed times, children before parents
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames:
            os.utime(os.path.join(dirpath, n), (FIXED_TIME, FIXED_TIME))
        os.utime(dirpath, (FIXED_TIME, FIXED_TIME))


def header(path):
    with open(path, 'rb') as f:
        h = f.read(110)
        if len(h) < 110 or h[:15] != b'partclone-image' or h[30:34] != b'0002':
            sys.exit('pcimg: %s: not a partclone 0002 image' % path)
        fs = h[36:52].split(b'\0')[0].decode('ascii', 'replace')
        devsize, total, used68, used76, bs = struct.unpack_from('<QQQQI', h, 52)
        csmode, cs, bpc, reseed, bmode = struct.unpack_from('<HHIBB', h, 96)
        nbm = (total + 7) // 8 if bmode == 1 else 0
        bitmap = f.read(nbm)
    pop = 0
    if bmode == 1:
        full = total // 8
        pop = sum(bin(b).count('1') for b in bitmap[:full])
        if total % 8:
            pop += bin(bitmap[full] & ((1 << (total % 8)) - 1)).count('1')
    else:
        pop = total
    datastart = 110 + (nbm + 4 if bmode == 1 else 0)
    if csmode == 0:
        cs, bpc = 0, 0
    ngroups = (pop + bpc - 1) // bpc if bpc else 0
    return dict(FSNAME=fs, DEVSIZE=devsize, TOTAL=total, USED68=used68, USED76=used76, BS=bs,
                CSMODE=csmode, CS=cs, BPC=bpc, RESEED=reseed, POP=pop,
                DATASTART=datastart, NGROUPS=ngroups), bitmap


def dataoff(hd, rank):
    off = hd['DATASTART'] + rank * hd['BS']
    if hd['BPC']:
        off += (rank // hd['BPC']) * hd['CS']
    return off


def blockof(hd, bitmap, rank):
    k = 0
    for i, byte in enumerate(bitmap):
        c = bin(byte).count('1')
        if k + c > rank:
            for bit in range(8):
                if byte >> bit & 1:
                    if k == rank:
                        return i * 8 + bit
                    k += 1
        k += c
    sys.exit('pcimg: rank %d out of range' % rank)


def zstd_second_block(path):
    with open(path, 'rb') as f:
        d = f.read(1 << 20)
    if d[:4] != b'\x28\xb5\x2f\xfd':
        sys.exit('pcimg: not a zstd frame')
    fhd = d[4]
    single = fhd >> 5 & 1
    fcs_size = [single, 2, 4, 8][fhd >> 6]
    did_size = [0, 1, 2, 4][fhd & 3]
    pos = 5 + (0 if single else 1) + did_size + fcs_size
    bh = int.from_bytes(d[pos:pos + 3], 'little')
    if bh & 1:
        sys.exit('pcimg: zstd frame has a single block')
    btype, bsize = bh >> 1 & 3, bh >> 3
    pos += 3 + (1 if btype == 1 else bsize)
    return pos


def main():
    a = sys.argv[1:]
    cmd = a[0]
    if cmd == 'gen':
        gen(a[1])
    elif cmd == 'randfile':
        with open(a[1], 'wb') as f:
            f.write(random.Random(int(a[3])).randbytes(int(a[2])))
    elif cmd == 'hdr':
        hd, _ = header(a[1])
        for k, v in hd.items():
            print('%s=%s' % (k, v if isinstance(v, int) else "'%s'" % v))
    elif cmd == 'dataoff':
        hd, _ = header(a[1])
        print(dataoff(hd, int(a[2])))
    elif cmd == 'csumoff':
        hd, _ = header(a[1])
        g = int(a[2])
        print(dataoff(hd, (g + 1) * hd['BPC']) - hd['CS'])
    elif cmd == 'blockof':
        hd, bm = header(a[1])
        print(blockof(hd, bm, int(a[2])))
    elif cmd == 'flip':
        off = int(a[2])
        mask = int(a[3], 0) if len(a) > 3 else 1
        with open(a[1], 'r+b') as f:
            f.seek(off)
            b = f.read(1)
            if len(b) != 1:
                sys.exit('pcimg: offset %d beyond end of %s' % (off, a[1]))
            f.seek(off)
            f.write(bytes([b[0] ^ mask]))
    elif cmd == 'zstdblock':
        print(zstd_second_block(a[1]))
    elif cmd == 'breakzstd':
        pos = zstd_second_block(a[1])
        with open(a[1], 'r+b') as f:
            f.seek(pos)
            b = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([b | 0x06]))   # block type bits 1-2 = 3 (reserved)
        print(pos)
    elif cmd == 'checkjson':
        hd, _ = header(a[1])
        try:
            j = json.load(sys.stdin)
        except ValueError as e:
            sys.exit('info --json output is not JSON: %s' % e)
        bad = []
        for key in ('format', 'fs', 'device_size', 'block_size', 'total_blocks',
                    'used_blocks', 'checksum', 'layers'):
            if key not in j:
                bad.append('missing key %r' % key)
        for key, want in (('device_size', hd['DEVSIZE']), ('block_size', hd['BS']),
                          ('total_blocks', hd['TOTAL']), ('used_blocks', hd['POP'])):
            if key in j and j[key] != want:
                bad.append('%s = %r, expected %r' % (key, j[key], want))
        if bad:
            sys.exit('info --json: ' + '; '.join(bad) + '\n  got: ' + json.dumps(j)[:600])
        if len(a) > 2:   # expected word in "layers"
            if a[2].lower() not in json.dumps(j.get('layers')).lower():
                sys.exit('info --json: layers %r does not mention %s'
                         % (j.get('layers'), a[2]))
    elif cmd == 'jsonok':
        try:
            j = json.load(sys.stdin)
        except ValueError as e:
            sys.exit('verify --json output is not JSON: %s' % e)
        print(json.dumps(j.get('ok')))
    else:
        sys.exit('pcimg: unknown command ' + cmd)


if __name__ == '__main__':
    main()
