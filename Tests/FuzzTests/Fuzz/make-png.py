import struct, zlib, sys
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
def png(w, h, depth, ctype, raw, interlace=0, extra=b''):
    ihdr = struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, interlace)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + extra + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')
# 6x5 palette with tRNS, 4-bit indices
w, h = 6, 5
rows = b''.join(b'\x00' + bytes(((x*2+y) % 16) << 4 | ((x*2+1+y) % 16) for x in range(3)) for y in range(h))
plte = chunk(b'PLTE', bytes(v for i in range(16) for v in (i*16, 255-i*16, (i*40) % 256)))
trns = chunk(b'tRNS', bytes(range(0, 256, 32)))
open('palette-trns.png', 'wb').write(png(w, h, 4, 3, rows, extra=plte + trns))
# 7x7 interlaced (Adam7) 16-bit gray+alpha
w = h = 7
def passes():
    out = b''
    for (x0, y0, dx, dy) in [(0,0,8,8),(4,0,8,8),(0,4,4,8),(2,0,4,4),(0,2,2,4),(1,0,2,2),(0,1,1,2)]:
        xs = list(range(x0, w, dx)); ys = list(range(y0, h, dy))
        if not xs or not ys: continue
        for y in ys:
            out += b'\x00' + b''.join(struct.pack('>HH', (x*9000 + y*300) % 65536, 40000) for x in xs)
    return out
open('interlaced-gray16-alpha.png', 'wb').write(png(w, h, 16, 4, passes(), interlace=1))
# 9x3 1-bit gray
w, h = 9, 3
rows = b''.join(b'\x00' + bytes([0b10110010 ^ y, 0b10000000]) for y in range(h))
open('gray1.png', 'wb').write(png(w, h, 1, 0, rows))
