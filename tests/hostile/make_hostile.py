#!/usr/bin/python3
"""Writes the hostile upload files of tests/hostile/files/ (deterministic).

    /usr/bin/python3 tests/hostile/make_hostile.py

Needs Debian's python3 with PIL. Files the image decoder's own fixtures
already hold (tests/fixtures/image/: huge_dims.*, idat_bomb.png,
text_bomb.png, bad_crc_*.png, bad_len.png, trunc_*, scans_many.jpg,
sof_*.jpg, *_named.png, zero_size.heic, random.bin, empty.png) are not
repeated here: cases.json names them as "fixture:<name>". Everything here is
small (the committed corpus stays far under 2 MB); big inputs (10,000-part
bodies, megabyte prompts, deep JSON) are built by the test at run time.
"""
import io
import os
import struct
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'files')
FIX = os.path.normpath(os.path.join(HERE, '..', 'fixtures', 'image'))


def write(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


def fixture(name):
    with open(os.path.join(FIX, name), 'rb') as f:
        return f.read()


def chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))


PNG_SIG = b'\x89PNG\r\n\x1a\n'


def png(w, h, rows, color_type=2, depth=8, extra=b'', interlace=0):
    ihdr = struct.pack('>IIBBBBB', w, h, depth, color_type, 0, 0, interlace)
    return (PNG_SIG + chunk(b'IHDR', ihdr) + extra + chunk(b'IDAT', zlib.compress(rows, 9)) +
            chunk(b'IEND', b''))


def small_png():
    im = Image.new('RGB', (16, 16), (200, 30, 30))
    b = io.BytesIO()
    im.save(b, 'PNG')
    return b.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)

    # ------------------------------------------------------------ PNG
    # 1 x 16384 rows is inside the side limit but 65535 rows is not.
    write('png_tall.png', png(1, 65535, b'\0\0\0\0' * 4))
    # A 4096 x 4096 IHDR whose pixel data is one row: within limits, data ends early.
    write('png_short_idat.png', png(4096, 4096, b'\0' + b'\0' * 4096 * 3))
    # Palette image with no PLTE chunk, and one whose indices point past the palette.
    write('png_no_plte.png', png(4, 4, b'\0\0\0\0\0' * 4, color_type=3))
    write('png_index_oob.png', png(4, 4, b'\0\xff\xff\xff\xff' * 4, color_type=3,
                                   extra=chunk(b'PLTE', b'\x10\x20\x30')))
    # Invalid header fields: depth 7, colour type 5, width 0, interlace 9.
    write('png_bad_depth.png', png(4, 4, b'\0' * 13 * 4, depth=7))
    write('png_bad_color.png', png(4, 4, b'\0' * 13 * 4, color_type=5))
    write('png_zero_width.png', png(0, 4, b'\0' * 4))
    write('png_bad_interlace.png', png(4, 4, b'\0' * 13 * 4, interlace=9))
    # 20,000 tiny ancillary chunks before the image data.
    many = b''.join(chunk(b'tEXt', b'k\0v') for _ in range(20000))
    write('png_many_chunks.png', png(2, 2, b'\0' * 7 * 2, extra=many))
    # A chunk length of 2^31 - 1 right after IHDR.
    good = small_png()
    write('png_chunk_len_huge.png', good[:33] + struct.pack('>I', 0x7fffffff) + b'IDAT' +
          good[41:])
    # IDAT pixel rows with an invalid filter type (9).
    write('png_bad_filter.png', png(4, 4, (b'\x09' + b'\0' * 12) * 4))
    # PNG + HTML polyglot: a valid PNG with an HTML page in a tEXt chunk and after IEND.
    page = b'<html><body><script>alert(document.domain)</script></body></html>'
    base = small_png()
    write('polyglot_png_html.png', base[:33] + chunk(b'tEXt', b'Comment\0' + page) + base[33:] +
          page)

    # A plain 100 x 50 picture (5,000 pixels): over a pixel limit of 4,096.
    b = io.BytesIO()
    Image.new('RGB', (100, 50), (90, 160, 30)).save(b, 'PNG')
    write('png_100x50.png', b.getvalue())

    # ------------------------------------------------------------ GIF + JS
    # A GIF89a that is also JavaScript (GIF89a=...;), named .png.
    gif = (b'GIF89a/*\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00'
           b'\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;*/'
           b'=1;alert(document.domain);')
    write('polyglot_gif_js.png', gif)

    # ------------------------------------------------------------ JPEG
    jpg = io.BytesIO()
    Image.new('RGB', (32, 32), (10, 120, 200)).save(jpg, 'JPEG', quality=80)
    jpg = jpg.getvalue()
    # Only the SOI marker; SOI then EOI.
    write('jpeg_soi_only.jpg', b'\xff\xd8')
    write('jpeg_soi_eoi.jpg', b'\xff\xd8\xff\xd9')
    # 30,000 empty COM segments before the frame.
    write('jpeg_many_markers.jpg', jpg[:2] + b'\xff\xfe\x00\x02' * 30000 + jpg[2:])
    # A segment length shorter than its own length field (1).
    write('jpeg_seglen_1.jpg', jpg[:2] + b'\xff\xe0\x00\x01' + jpg[2:])
    # An APP1 EXIF block whose IFD points at itself (a loop) and past the end.
    ifd = struct.pack('<H', 2) + struct.pack('<HHII', 0x0112, 3, 1, 6) + \
        struct.pack('<HHII', 0x8769, 4, 1, 8) + struct.pack('<I', 8)
    tiff = b'II*\x00' + struct.pack('<I', 8) + ifd
    app1 = b'Exif\0\0' + tiff
    write('jpeg_exif_loop.jpg', jpg[:2] + b'\xff\xe1' + struct.pack('>H', len(app1) + 2) + app1 +
          jpg[2:])
    # Zero components in the frame header.
    sof = jpg.find(b'\xff\xc0')
    b = bytearray(jpg)
    b[sof + 9] = 0
    write('jpeg_zero_components.jpg', bytes(b))

    # ------------------------------------------------------------ WebP
    # Lossless WebP whose first Huffman code is malformed: the bits after the
    # header ask for a "normal" code-length code with every length zero.
    vp8l = b'\x2f' + struct.pack('<I', (31) | (31 << 14)) + b'\x00\x00\x00\x00\x00\x00\xff\xff'
    write('webp_bad_huffman.webp', b'RIFF' + struct.pack('<I', 4 + 8 + len(vp8l)) + b'WEBP' +
          b'VP8L' + struct.pack('<I', len(vp8l)) + vp8l)
    # A lossless WebP with its Huffman data overwritten by ones.
    lossless = bytearray(fixture('alpha_lossless.webp'))
    for i in range(25, min(len(lossless), 60)):
        lossless[i] = 0xff
    write('webp_huffman_ones.webp', bytes(lossless))
    # RIFF size larger than the file; VP8X canvas 16384 x 16384 with a 1x1 frame.
    w = bytearray(fixture('alpha_lossless.webp'))
    struct.pack_into('<I', w, 4, 0x7ffffff0)
    write('webp_riff_lies.webp', bytes(w))
    vp8x = b'VP8X' + struct.pack('<I', 10) + b'\x00\x00\x00\x00' + \
        (16383).to_bytes(3, 'little') + (16383).to_bytes(3, 'little')
    write('webp_vp8x_canvas.webp', b'RIFF' + struct.pack('<I', 4 + len(vp8x)) + b'WEBP' + vp8x)

    # ------------------------------------------------------------ HEIC
    heic = bytearray(fixture('quadrants.heic'))
    write('heic_no_extents.heic', heic_iloc(heic, 'zero_extents'))
    write('heic_extent_past_end.heic', heic_iloc(heic, 'past_end'))
    big = bytearray(heic)
    at = big.find(b'ispe')
    while at >= 0:
        struct.pack_into('>II', big, at + 8, 65535, 65535)
        at = big.find(b'ispe', at + 4)
    write('heic_ispe_huge.heic', bytes(big))
    # The ftyp box alone, and a box whose size is 1 (64-bit size) with no size.
    ftyp_len = struct.unpack('>I', heic[:4])[0]
    write('heic_ftyp_only.heic', bytes(heic[:ftyp_len]))
    write('heic_box_size_1.heic', bytes(heic[:ftyp_len]) + struct.pack('>I4s', 1, b'meta'))
    write('heic_box_size_0.heic', bytes(heic[:ftyp_len]) + struct.pack('>I4s', 0, b'meta') +
          b'\0' * 8)

    # ------------------------------------------------------------ not images
    write('svg_script.png', b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
          b'onload="alert(1)"><script>alert(2)</script></svg>')
    write('pdf_named.jpg', b'%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n')
    write('elf_named.webp', b'\x7fELF\x02\x01\x01' + b'\0' * 57)
    write('zip_named.png', b'PK\x03\x04' + b'\0' * 26)


def boxes(data, start, end):
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack('>I4s', data[i:i + 8])
        if size < 8:
            return
        yield i, size, kind
        i += size


def heic_iloc(heic, how):
    """Edits the first iloc entry (the layout heif-enc writes: iloc version
    0 or 1, 4-byte offsets and lengths) to have no extents, or an extent far
    past the end of the file."""
    data = bytearray(heic)
    meta = next(i for i, s, k in boxes(data, 0, len(data)) if k == b'meta')
    msize = struct.unpack('>I', data[meta:meta + 4])[0]
    iloc = next(i for i, s, k in boxes(data, meta + 12, meta + msize) if k == b'iloc')
    version = data[iloc + 8]
    sizes = data[iloc + 12]
    off_size, len_size = sizes >> 4, sizes & 15
    base_size = data[iloc + 13] >> 4
    index_size = data[iloc + 13] & 15 if version in (1, 2) else 0
    pos = iloc + 14
    count = struct.unpack('>H', data[pos:pos + 2])[0]
    pos += 2
    assert count >= 1 and off_size == 4 and len_size == 4 and index_size == 0
    pos += 2  # item id
    if version in (1, 2):
        pos += 2  # construction method
    pos += 2 + base_size  # data reference index, base offset
    if how == 'zero_extents':
        struct.pack_into('>H', data, pos, 0)
        return bytes(data)
    pos += 2  # extent count
    struct.pack_into('>II', data, pos, len(data) * 4, 0x7fffff00)
    return bytes(data)


if __name__ == '__main__':
    main()
